/*
 * The Redis store's scripts for publish, DELETE and channel info (run by
 * ngx_http_sse_store_redis_publish.cpp).  Each is one atomic unit in
 * Redis: every check comes before the first write, so a script that
 * refuses refuses having written nothing (Redis does not undo the writes
 * of a script that fails half-way).  The "#!lua" shebang makes Redis 7
 * refuse a writing script up front when it is over maxmemory, instead of
 * at its first write.
 *
 * Numbers: Lua's are doubles, exact up to 2^53.  Epochs (microseconds
 * since 1970, ~1.7e15) and seqs stay below that (checked); they are
 * written with string.format('%d') (tostring() would give exponents).
 *
 * KEYS, per channel i (1-based): c:, h:, x:, s: at 4i-3 .. 4i.
 */

#ifndef NGX_HTTP_SSE_STORE_REDIS_SCRIPTS_H
#define NGX_HTTP_SSE_STORE_REDIS_SCRIPTS_H


/* what the three scripts share: checks, numbers, subscriber sums */
#define NGX_HTTP_SSE_LUA_COMMON                                              \
"local prefix = ARGV[1]\n"                                                   \
"local n = tonumber(ARGV[2])\n"                                              \
"local limit = 9007199254740991\n"                                           \
"local function num(v)\n"                                                    \
"  if type(v) ~= 'string' or #v > 16 or not string.find(v, '^%d+$') then\n"  \
"    return nil\n"                                                           \
"  end\n"                                                                    \
"  local x = tonumber(v)\n"                                                  \
"  if x > limit then return nil end\n"                                       \
"  return x\n"                                                               \
"end\n"                                                                      \
"local function fmt(x) return string.format('%d', x) end\n"                  \
"local function check(key, want)\n"                                          \
"  local t = redis.call('TYPE', key)['ok']\n"                                \
"  if t ~= 'none' and t ~= want then\n"                                      \
"    return 'SSEWRONGTYPE ' .. key .. ' is a ' .. t .. ', not a ' .. want\n" \
"  end\n"                                                                    \
"end\n"                                                                      \
"local function check_all()\n"                                               \
"  for i = 1, n do\n"                                                        \
"    local err = check(KEYS[4*i-3], 'hash') or check(KEYS[4*i-2], 'stream')\n"\
"      or check(KEYS[4*i-1], 'string') or check(KEYS[4*i], 'hash')\n"        \
"    if err then return err end\n"                                           \
"  end\n"                                                                    \
"end\n"                                                                      \
"local function subscribers(key, prune)\n"                                   \
"  local f = redis.call('HGETALL', key)\n"                                   \
"  local sum = 0\n"                                                          \
"  for j = 1, #f - 1, 2 do\n"                                                \
"    if redis.call('EXISTS', prefix .. 'n:' .. f[j]) == 1 then\n"            \
"      local c = num(f[j+1])\n"                                              \
"      if c then sum = math.min(sum + c, 4294967295) end\n"                  \
"    elseif prune then\n"                                                    \
"      redis.call('HDEL', key, f[j])\n"                                      \
"    end\n"                                                                  \
"  end\n"                                                                    \
"  return sum\n"                                                             \
"end\n"                                                                      \
"local t = redis.call('TIME')\n"                                             \
"local now_s = tonumber(t[1])\n"                                             \
"local now_us = now_s * 1000000 + tonumber(t[2])\n"                          \
"local now_ms = now_s * 1000 + math.floor(tonumber(t[2]) / 1000)\n"          \
"local function new_epoch(floor)\n"                                          \
"  if floor < now_us then return now_us end\n"                               \
"  return floor + 1\n"                                                       \
"end\n"


/*
 * publish.  ARGV: prefix, n, nevents, history, history_ttl (ms), channel
 * lifetime (ms), Idempotency-Key ('' none), then per channel its id and
 * the (epoch, seq) the node holds ('' '' none), then per event its type
 * and data.
 * Reply: { repeated, then per channel: epoch (string), last seq,
 * events published, subscribers }.
 */
static const char  ngx_http_sse_lua_publish[] =
"#!lua\n"
NGX_HTTP_SSE_LUA_COMMON
"local nev = tonumber(ARGV[3])\n"
"local history = ARGV[4]\n"
"local history_ttl = ARGV[5]\n"
"local lifetime = ARGV[6]\n"
"local idem = ARGV[7]\n"
"local events = 7 + 3 * n\n"
"local err = check_all()\n"
"if err then return redis.error_reply(err) end\n"

/* Idempotency-Key: the recorded answer, before anything is written */
"local ikey\n"
"if idem ~= '' then\n"
"  local parts = { idem }\n"
"  for i = 1, n do parts[i+1] = ARGV[5 + 3*i] end\n"
"  ikey = prefix .. 'i:' .. redis.sha1hex(table.concat(parts, '\\0'))\n"
"  err = check(ikey, 'string')\n"
"  if err then return redis.error_reply(err) end\n"
"  local rec = redis.call('GET', ikey)\n"
"  if rec then\n"
"    local out = { 1 }\n"
"    for w in string.gmatch(rec, '%S+') do\n"
"      if (#out - 1) % 4 == 0 then out[#out+1] = w\n"
"      else out[#out+1] = num(w) or -1 end\n"
"    end\n"
"    if #out ~= 1 + 4*n then\n"
"      return redis.error_reply('SSECORRUPT ' .. ikey)\n"
"    end\n"
"    return out\n"
"  end\n"
"end\n"

/*
 * Per channel: its epoch and first seq.  A new epoch when the channel is
 * missing (new, expired, flushed, evicted), deleted (a tomb), or its
 * position went back: the node holds a later position (a higher epoch,
 * or the same epoch and a higher seq), or the stream holds entries past
 * the channel's seq (restored or failed over to older data).
 */
"local plan = {}\n"
"for i = 1, n do\n"
"  local kc, kh, kx = KEYS[4*i-3], KEYS[4*i-2], KEYS[4*i-1]\n"
"  local c = redis.call('HMGET', kc, 'e', 's')\n"
"  local e, s, floor, fresh = nil, 0, 0, false\n"
"  if c[1] then\n"
"    e = num(c[1])\n"
"    s = num(c[2] or '0')\n"
"    if not e or e == 0 or not s then\n"
"      return redis.error_reply('SSECORRUPT ' .. kc)\n"
"    end\n"
"    floor = e\n"
"  else\n"
"    fresh = true\n"
"  end\n"
"  local tomb = redis.call('GET', kx)\n"
"  if tomb then\n"
"    fresh = true\n"
"    floor = math.max(floor, num(tomb) or 0)\n"
"  end\n"
"  local ke, ks = num(ARGV[6 + 3*i]), num(ARGV[7 + 3*i])\n"
"  if ke and ks then\n"
"    if e and (ke > e or (ke == e and ks > s)) then fresh = true end\n"
"    floor = math.max(floor, ke)\n"
"  end\n"
"  if not fresh and #redis.call('XRANGE', kh, fmt(s + 1) .. '-0', '+',\n"
"                               'COUNT', 1) > 0 then\n"
"    fresh = true\n"
"  end\n"
"  local p = { fresh = fresh, epoch = e, first = s + 1 }\n"
"  if fresh then\n"
"    p.epoch = new_epoch(floor)\n"
"    p.first = 1\n"
"  end\n"
"  if p.epoch >= limit or p.first + nev > limit then\n"
"    return redis.error_reply('SSEOVERFLOW ' .. kc)\n"
"  end\n"
"  plan[i] = p\n"
"end\n"

/* the writes: nothing above has written */
"local body = {}\n"
"for k = 1, nev do\n"
"  local ty, d = ARGV[events + 2*k - 1], ARGV[events + 2*k]\n"
"  body[k] = fmt(#ty) .. ' ' .. fmt(#d) .. '\\n' .. ty .. d\n"
"end\n"
"body = table.concat(body)\n"
"local out, rec = { 0 }, {}\n"
"for i = 1, n do\n"
"  local kc, kh, kx, ks = KEYS[4*i-3], KEYS[4*i-2], KEYS[4*i-1], KEYS[4*i]\n"
"  local p = plan[i]\n"
"  local es = fmt(p.epoch)\n"
"  if p.fresh then\n"
"    redis.call('DEL', kh, kx)\n"
"    redis.call('HSET', kc, 'e', es, 's', fmt(p.first - 1))\n"
"  end\n"
"  local last = redis.call('HINCRBY', kc, 's', nev)\n"
"  redis.call('HSET', kc, 't', fmt(now_s))\n"
"  for k = 1, nev do\n"
"    redis.call('XADD', kh, 'MAXLEN', history, fmt(p.first + k - 1) .. '-0',\n"
"               't', ARGV[events + 2*k - 1], 'd', ARGV[events + 2*k],\n"
"               'm', fmt(now_ms))\n"
"  end\n"
"  redis.call('PEXPIRE', kc, lifetime)\n"
"  redis.call('PEXPIRE', kh, math.min(tonumber(lifetime),\n"
"                                     tonumber(history_ttl)))\n"
"  redis.call('PUBLISH', prefix .. 'm:' .. ARGV[5 + 3*i],\n"
"             'E ' .. es .. ' ' .. fmt(p.first) .. ' ' .. fmt(nev) .. ' '\n"
"             .. fmt(now_ms) .. '\\n' .. body)\n"
"  local subs = subscribers(ks, true)\n"
"  out[#out+1] = es\n"
"  out[#out+1] = last\n"
"  out[#out+1] = nev\n"
"  out[#out+1] = subs\n"
"  rec[#rec+1] = es .. ' ' .. fmt(last) .. ' ' .. fmt(nev) .. ' '\n"
"                .. fmt(subs)\n"
"end\n"
"if ikey then\n"
"  redis.call('SET', ikey, table.concat(rec, ' '), 'PX', history_ttl)\n"
"end\n"
"return out\n";


/*
 * What DELETE and channel info answer, per channel: state (0 none,
 * 1 live, 2 deleted), subscribers, events, epoch (string, '' none),
 * last seq, last publish (unix s).  A channel that was never published
 * to but has subscribers on some node is live (as on one node).
 */
#define NGX_HTTP_SSE_LUA_STATE                                               \
"local function state(i, prune)\n"                                           \
"  local kc, kh, kx, ks = KEYS[4*i-3], KEYS[4*i-2], KEYS[4*i-1], KEYS[4*i]\n"\
"  local c = redis.call('HMGET', kc, 'e', 's', 't')\n"                       \
"  local subs = subscribers(ks, prune)\n"                                    \
"  local r = { st = 0, subs = subs, events = 0, epoch = '', seq = 0,\n"      \
"              t = 0 }\n"                                                    \
"  if c[1] then\n"                                                           \
"    r.st = 1\n"                                                             \
"    r.e = num(c[1])\n"                                                      \
"    if r.e and r.e > 0 then r.epoch = fmt(r.e) end\n"                       \
"    r.seq = num(c[2] or '0') or 0\n"                                        \
"    r.t = num(c[3] or '0') or 0\n"                                          \
"    r.events = redis.call('XLEN', kh)\n"                                    \
"  elseif redis.call('EXISTS', kx) == 1 then\n"                              \
"    r.st = 2\n"                                                             \
"  elseif subs > 0 then\n"                                                   \
"    r.st = 1\n"                                                             \
"  end\n"                                                                    \
"  return r\n"                                                               \
"end\n"                                                                      \
"local function push(out, r)\n"                                              \
"  out[#out+1] = r.st\n"                                                     \
"  out[#out+1] = r.subs\n"                                                   \
"  out[#out+1] = r.events\n"                                                 \
"  out[#out+1] = r.epoch\n"                                                  \
"  out[#out+1] = r.seq\n"                                                    \
"  out[#out+1] = r.t\n"                                                      \
"end\n"


/*
 * DELETE.  ARGV: prefix, n, history_ttl (ms), then the channel ids.  A
 * live channel gets a tomb holding its epoch (for a channel never
 * published to: the time, as an epoch), loses c: and h:, and its nodes
 * hear "D <epoch>".
 */
static const char  ngx_http_sse_lua_remove[] =
"#!lua\n"
NGX_HTTP_SSE_LUA_COMMON
NGX_HTTP_SSE_LUA_STATE
"local err = check_all()\n"
"if err then return redis.error_reply(err) end\n"
"local out = {}\n"
"for i = 1, n do\n"
"  local r = state(i, true)\n"
"  if r.st == 1 then\n"
"    local es = r.epoch\n"
"    if es == '' then es = fmt(now_us) end\n"
"    redis.call('SET', KEYS[4*i-1], es, 'PX', ARGV[3])\n"
"    redis.call('DEL', KEYS[4*i-3], KEYS[4*i-2])\n"
"    redis.call('PUBLISH', prefix .. 'm:' .. ARGV[3 + i],\n"
"               'D ' .. es .. '\\n')\n"
"  end\n"
"  push(out, r)\n"
"end\n"
"return out\n";


/* channel info.  ARGV: prefix, n.  Writes nothing: it runs under OOM. */
static const char  ngx_http_sse_lua_info[] =
"#!lua flags=no-writes\n"
NGX_HTTP_SSE_LUA_COMMON
NGX_HTTP_SSE_LUA_STATE
"local err = check_all()\n"
"if err then return redis.error_reply(err) end\n"
"local out = {}\n"
"for i = 1, n do push(out, state(i, false)) end\n"
"return out\n";


#endif /* NGX_HTTP_SSE_STORE_REDIS_SCRIPTS_H */
