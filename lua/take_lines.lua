-- Shared by reserve_stock.lua and reserve_part.lua: src/store/redis/stock/ prepends this file to
-- each of them (a script cannot load another), so the all-or-nothing check of an order's lines
-- has one home.
--
-- take_lines(first_key, first_qty, n) takes the units of n lines, all or none: line i's avail
-- counter is KEYS[first_key + i - 1], its quantity ARGV[first_qty + i - 1].
-- Returns nil when every line was taken; otherwise the caller's refusal reply, nothing taken:
-- {-1, i, j, ...} lines i, j, ... have no counter yet (the caller hydrates them and retries);
-- {0, i, avail} line i is short (only `avail` left).
local function take_lines(first_key, first_qty, n)
    local missing = {-1}
    local avail = {}
    for i = 1, n do
        local v = redis.call('GET', KEYS[first_key + i - 1])
        if v then
            avail[i] = tonumber(v)
        else
            missing[#missing + 1] = i
        end
    end
    if #missing > 1 then
        return missing
    end
    for i = 1, n do
        if avail[i] < tonumber(ARGV[first_qty + i - 1]) then
            return {0, i, avail[i]}
        end
    end
    for i = 1, n do
        redis.call('DECRBY', KEYS[first_key + i - 1], ARGV[first_qty + i - 1])
    end
    return nil
end

