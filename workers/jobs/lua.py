"""The job record's state changes as Redis Lua scripts: each is atomic and fenced by `attempt`.

KEYS and ARGV are documented at the top of each script; `workers.jobs.records.JobStore` is the
only caller.
"""

CREATE = """
if ARGV[4] == '1' then
  local existing = redis.call('GET', KEYS[3])
  if existing then return existing end
end
redis.call('HSET', KEYS[1], unpack(ARGV, 5))
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
if ARGV[4] == '1' then redis.call('SET', KEYS[3], ARGV[1], 'EX', ARGV[3]) end
return ARGV[1]
"""

# KEYS: job, lease, running. ARGV: runner, lease_ms, now, job_id.
CLAIM = """
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return {0, 'missing'} end
if state == 'succeeded' or state == 'failed' or state == 'cancelled' then return {0, state} end
if redis.call('HGET', KEYS[1], 'cancel_requested') == '1' then
  redis.call('HSET', KEYS[1], 'state', 'cancelled', 'finished_at', ARGV[3], 'updated_at', ARGV[3])
  redis.call('SREM', KEYS[3], ARGV[4])
  return {0, 'cancelled'}
end
if redis.call('EXISTS', KEYS[2]) == 1 then return {0, 'leased'} end
local attempt = redis.call('HINCRBY', KEYS[1], 'attempt', 1)
redis.call('SET', KEYS[2], ARGV[1] .. ':' .. attempt, 'PX', ARGV[2])
redis.call('HSET', KEYS[1], 'state', 'running', 'updated_at', ARGV[3], 'partial', 0)
if (redis.call('HGET', KEYS[1], 'started_at') or '') == '' then
  redis.call('HSET', KEYS[1], 'started_at', ARGV[3])
end
redis.call('SADD', KEYS[3], ARGV[4])
return {attempt, 'running'}
"""

# KEYS: job, lease. ARGV: token, lease_ms, attempt. 0 lost, 1 held, 2 held + cancel requested.
HEARTBEAT = """
if redis.call('HGET', KEYS[1], 'attempt') ~= ARGV[3] then return 0 end
if redis.call('HGET', KEYS[1], 'state') ~= 'running' then return 0 end
local current = redis.call('GET', KEYS[2])
if current == ARGV[1] then
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
elseif not current then
  redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
else
  return 0
end
if redis.call('HGET', KEYS[1], 'cancel_requested') == '1' then return 2 end
return 1
"""

# KEYS: job, shards. ARGV: attempt, shard, shard_json, items, now. -1 fenced off, 0 dup, 1 ok.
COMMIT = """
if redis.call('HGET', KEYS[1], 'attempt') ~= ARGV[1] then return -1 end
if redis.call('HEXISTS', KEYS[2], ARGV[2]) == 1 then return 0 end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
redis.call('HINCRBY', KEYS[1], 'done', ARGV[4])
redis.call('HINCRBY', KEYS[1], 'shards_done', 1)
redis.call('HSET', KEYS[1], 'partial', 0, 'updated_at', ARGV[5])
return 1
"""

# KEYS: job. ARGV: attempt, field/value pairs.
UPDATE = """
if redis.call('HGET', KEYS[1], 'attempt') ~= ARGV[1] then return 0 end
if redis.call('HGET', KEYS[1], 'state') ~= 'running' then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
return 1
"""

# KEYS: job, lease, running. ARGV: attempt, job_id, field/value pairs (incl. state).
FINISH = """
if redis.call('HGET', KEYS[1], 'attempt') ~= ARGV[1] then return 0 end
local state = redis.call('HGET', KEYS[1], 'state')
if state == 'succeeded' or state == 'failed' or state == 'cancelled' then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
redis.call('DEL', KEYS[2])
redis.call('SREM', KEYS[3], ARGV[2])
return 1
"""

# KEYS: job, lease, running. ARGV: now, job_id. Returns the state after the call.
CANCEL = """
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return 'missing' end
if state == 'succeeded' or state == 'failed' or state == 'cancelled' then return state end
redis.call('HSET', KEYS[1], 'cancel_requested', '1', 'updated_at', ARGV[1])
if state == 'queued' or redis.call('EXISTS', KEYS[2]) == 0 then
  redis.call('HSET', KEYS[1], 'state', 'cancelled', 'finished_at', ARGV[1])
  redis.call('SREM', KEYS[3], ARGV[2])
  return 'cancelled'
end
return 'cancelling'
"""
