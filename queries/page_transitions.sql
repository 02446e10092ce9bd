-- name: page_transitions
-- kind: query
-- description: Per process present in both snapshots with the same identity (pid and start time), kB of pages that became private (copy-on-write break: PFN changed, shared before, private after), became shared, appeared, disappeared, were swapped out or swapped in. Needs PFNs in both snapshots.
-- params: from_host: host of the earlier snapshot; from_id: earlier snapshot id; to_host: host of the later snapshot; to_id: later snapshot id; mapfilter: regex on mapping path, or NULL for all pages; parts: number of process partitions to split the work into (each part is one run of the query, with a fraction of the memory), or NULL for 1; part: number of the partition this run computes, 0 to parts-1, or NULL for 0
WITH
pb AS (SELECT pid, starttime_ticks FROM processes WHERE host = $from_host AND snapshot_id = $from_id),
pa AS (SELECT pid, starttime_ticks FROM processes WHERE host = $to_host AND snapshot_id = $to_id),
same AS (SELECT pid FROM pb JOIN pa USING (pid, starttime_ticks)),
ps AS (SELECT page_size_bytes AS ps FROM snapshots WHERE host = $to_host AND snapshot_id = $to_id),
-- with a map filter, only pages of mappings whose path matches (in the snapshot the page is in), by
-- (pid, map_idx): an equi-join (stores before schema 4 get map_idx from the pages view)
fm AS (
    SELECT host, snapshot_id, pid, idx
    FROM mappings
    WHERE $mapfilter IS NOT NULL AND regexp_matches(coalesce(path, '<anonymous>'), coalesce($mapfilter, ''))
      AND ((host = $from_host AND snapshot_id = $from_id) OR (host = $to_host AND snapshot_id = $to_id))
),
-- Each snapshot's pages of the processes in both, joined to its own frames (present pages only), then the two
-- paired by a FULL OUTER JOIN on (pid, vpn).  Split the processes into parts (hash of pid) when this does not
-- fit in DuckDB's memory; each part is a separate run.  With one part the hash is not computed at all (as
-- HUGEINT it cost 2.8 s of CPU at 5M pages).
fb AS (SELECT pfn, mapcount FROM frames WHERE host = $from_host AND snapshot_id = $from_id),
fa AS (SELECT pfn, mapcount FROM frames WHERE host = $to_host AND snapshot_id = $to_id),
b AS (
    SELECT p.pid, p.vpn, p.entry, f.mapcount
    FROM (SELECT pid, vpn, entry, map_idx FROM pages WHERE host = $from_host AND snapshot_id = $from_id) p
    LEFT JOIN fb f ON ((p.entry >> 63) & 1) = 1 AND f.pfn = p.entry & 36028797018963967
    WHERE (coalesce($parts, 1) = 1 OR hash(p.pid) % $parts::UBIGINT = $part::UBIGINT)
      AND ($mapfilter IS NULL OR (p.pid, p.map_idx) IN (SELECT (pid, idx) FROM fm
                                                         WHERE host = $from_host AND snapshot_id = $from_id))
),
a AS (
    SELECT p.pid, p.vpn, p.entry, f.mapcount
    FROM (SELECT pid, vpn, entry, map_idx FROM pages WHERE host = $to_host AND snapshot_id = $to_id) p
    LEFT JOIN fa f ON ((p.entry >> 63) & 1) = 1 AND f.pfn = p.entry & 36028797018963967
    WHERE (coalesce($parts, 1) = 1 OR hash(p.pid) % $parts::UBIGINT = $part::UBIGINT)
      AND ($mapfilter IS NULL OR (p.pid, p.map_idx) IN (SELECT (pid, idx) FROM fm
                                                         WHERE host = $to_host AND snapshot_id = $to_id))
),
j AS (
    SELECT coalesce(a.pid, b.pid) AS pid, b.entry AS be, a.entry AS ae, b.mapcount AS bm, a.mapcount AS am,
           coalesce(((b.entry >> 63) & 1) = 1, false) AS bp, coalesce(((a.entry >> 63) & 1) = 1, false) AS ap,
           coalesce(((b.entry >> 62) & 1) = 1, false) AS bs, coalesce(((a.entry >> 62) & 1) = 1, false) AS aswp
    FROM b FULL JOIN a ON a.pid = b.pid AND a.vpn = b.vpn
),
-- the processes in both snapshots, after the pairing (as a filter on each side, it made DuckDB plan the pairing
-- differently: out of memory at 5M pages with 1 GB)
js AS (SELECT * FROM j WHERE pid IN (SELECT pid FROM same))
SELECT pid,
    count(*) FILTER (WHERE bp AND ap AND (be & 36028797018963967) <> (ae & 36028797018963967)
                     AND bm > 1 AND am <= 1) * (SELECT ps FROM ps) // 1024 AS became_private_kb,
    count(*) FILTER (WHERE bp AND ap AND bm <= 1 AND am > 1) * (SELECT ps FROM ps) // 1024 AS became_shared_kb,
    count(*) FILTER (WHERE be IS NULL) * (SELECT ps FROM ps) // 1024 AS new_pages_kb,
    count(*) FILTER (WHERE ae IS NULL) * (SELECT ps FROM ps) // 1024 AS gone_pages_kb,
    count(*) FILTER (WHERE bp AND aswp) * (SELECT ps FROM ps) // 1024 AS swapped_out_kb,
    count(*) FILTER (WHERE bs AND ap) * (SELECT ps FROM ps) // 1024 AS swapped_in_kb
FROM js
GROUP BY pid
