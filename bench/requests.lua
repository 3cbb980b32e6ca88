-- wrk script for bench/run's writes and its mixed load: each request is one of the lines of
-- WERKLAB_REQUESTS, "NAME KEY PATH", chosen at random (one line: always that one). KEY is the
-- bearer token it carries. NAME says what is sent:
--   post   POST PATH (/v1/initiatives): a new initiative, in one of WERKLAB_MUNICIPALITIES
--          (comma-separated ids) at random, its name made unique by thread and counter;
--   patch  PATCH PATH/{id} (/v1/initiatives): a new description for one of the
--          WERKLAB_PATCH_ROWS initiatives bench/run loads, at random (ids
--          00000000-0000-4000-8000-100000000001 and up), without If-Match;
--   other  GET PATH.
--   WERKLAB_REQUESTS="post wlk_... /v1/initiatives" wrk -s bench/requests.lua http://127.0.0.1:8080
local requests = {}
for line in (os.getenv("WERKLAB_REQUESTS") or ""):gmatch("[^\n]+") do
  local name, key, path = line:match("^(%S+) (%S+) (%S+)$")
  if not name then
    error("bench/requests.lua: a line of WERKLAB_REQUESTS is not NAME KEY PATH: " .. line)
  end
  requests[#requests + 1] = { name = name, key = key, path = path }
end
if #requests == 0 then
  error("bench/requests.lua: set WERKLAB_REQUESTS to lines of NAME KEY PATH")
end
local municipalities = {}
for id in (os.getenv("WERKLAB_MUNICIPALITIES") or ""):gmatch("[^,]+") do
  municipalities[#municipalities + 1] = id
end
local patch_rows = tonumber(os.getenv("WERKLAB_PATCH_ROWS") or "0")

-- Each thread has its own Lua state: setup (in the main one) numbers them.
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("thread_number", threads)
end

local counter = 0
local fixed = {}
function init(args)
  math.randomseed(os.time() * 1000 + (thread_number or 0))
  for i, r in ipairs(requests) do
    local headers = { ["Authorization"] = "Bearer " .. r.key }
    if r.name == "post" then
      if #municipalities == 0 then error("bench/requests.lua: post needs WERKLAB_MUNICIPALITIES") end
      headers["Content-Type"] = "application/json"
    elseif r.name == "patch" then
      if patch_rows < 1 then error("bench/requests.lua: patch needs WERKLAB_PATCH_ROWS") end
      headers["Content-Type"] = "application/merge-patch+json"
    else
      fixed[i] = wrk.format("GET", r.path, headers)
    end
    r.headers = headers
  end
end

function request()
  local i = #requests == 1 and 1 or math.random(#requests)
  if fixed[i] then return fixed[i] end
  local r = requests[i]
  counter = counter + 1
  if r.name == "post" then
    local body = string.format(
      '{"municipalityId":"%s","name":"Bench initiative %d-%d","kind":"residentInitiative",' ..
      '"description":"Beschrijving %d"}',
      municipalities[math.random(#municipalities)], thread_number or 0, counter, math.random(1e9))
    return wrk.format("POST", r.path, r.headers, body)
  end
  local id = string.format("00000000-0000-4000-8000-%012d", 100000000000 + math.random(patch_rows))
  local body = string.format('{"description":"Beschrijving %d"}', math.random(1e9))
  return wrk.format("PATCH", r.path .. "/" .. id, r.headers, body)
end
