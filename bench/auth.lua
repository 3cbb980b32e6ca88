-- wrk script for bench/run: every request carries the API key from the environment.
--   WERKLAB_KEY=wlk_... wrk -s bench/auth.lua http://127.0.0.1:8080/v1/municipalities
local key = os.getenv("WERKLAB_KEY")
if key == nil or key == "" then
  error("bench/auth.lua: set WERKLAB_KEY to an API key")
end
wrk.headers["Authorization"] = "Bearer " .. key
