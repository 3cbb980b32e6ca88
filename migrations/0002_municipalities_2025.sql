-- The 342 municipalities of 1 January 2025 (CBS), shipped with the product in
-- data/gemeenten-2025.csv and loaded from it by the migrator:
-- copy-into: municipalities (code, name, province)
-- copy-from: data/gemeenten-2025.csv
SELECT 1;
