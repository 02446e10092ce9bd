-- name: page_transitions
-- kind: query
-- description: Per process present in both snapshots with the same identity (pid and start time), kB of pages that became private (copy-on-write break: PFN changed, shared before, private after), became shared, appeared, disappeared, were swapped out or swapped in. Needs PFNs in both snapshots.
-- params: from_host: host of the earlier snapshot; from_id: earlier snapshot id; to_host: host of the later snapshot; to_id: later snapshot id; mapfilter: regex on mapping path, or NULL for all pages; parts: number of process partitions to split the work into (each part is one run of the query, with a fraction of the memory), or NULL for 1; part: number of the partition this run computes, 0 to parts-1, or NULL for 0
WITH
pb AS (SELECT pid, starttime_ticks FROM processes WHERE host = $from_host AND snapshot_id = $from_id),
pa AS (SELECT pid, starttime_ticks FROM processes WHERE host = $to_host AND snapshot_id = $to_id),
same AS (SELECT pid FROM pb JOIN pa USING (pid, starttime_ticks)),
ps AS (SELECT page_size_bytes AS ps FROM snapshots WHERE host = $to_host AND snapshot_id = $to_id),
-- with a map filter, only pages inside mappings whose path matches (in the snapshot the page is in)
fm AS (
    SELECT host, snapshot_id, pid, start_addr // (SELECT ps FROM ps) AS s, end_addr // (SELECT ps FROM ps) AS e
    FROM mappings
    WHERE $mapfilter IS NOT NULL AND regexp_matches(coalesce(path, '<anonymous>'), coalesce($mapfilter, ''))
      AND ((host = $from_host AND snapshot_id = $from_id) OR (host = $to_host AND snapshot_id = $to_id))
),
b_in_filter AS (
    SELECT p.pid, p.vpn FROM pages p JOIN fm ON fm.host = p.host AND fm.snapshot_id = p.snapshot_id
        AND fm.pid = p.pid AND p.vpn >= fm.s AND p.vpn < fm.e
    WHERE p.host = $from_host AND p.snapshot_id = $from_id
),
a_in_filter AS (
    SELECT p.pid, p.vpn FROM pages p JOIN fm ON fm.host = p.host AND fm.snapshot_id = p.snapshot_id
        AND fm.pid = p.pid AND p.vpn >= fm.s AND p.vpn < fm.e
    WHERE p.host = $to_host AND p.snapshot_id = $to_id
),
-- Both snapshots' pages in one stream tagged by side, joined once to both snapshots' frames, then paired by
-- (pid, vpn) with an aggregate.  A FULL OUTER JOIN of two frame-joined sides needed two frame hash tables
-- and the pairing at once: out of memory at 50M pages with a 500 MB DuckDB limit.  Split the processes
-- into parts (hash of pid) when even this does not fit; each part is a separate run.  With one part the
-- hash is not computed at all (as HUGEINT it cost 2.8 s of CPU at 5M pages).
u AS (
    SELECT false AS after, p.pid, p.vpn, p.entry
    FROM pages p
    WHERE p.host = $from_host AND p.snapshot_id = $from_id AND p.pid IN (SELECT pid FROM same)
      AND (coalesce($parts, 1) = 1 OR hash(p.pid) % $parts::UBIGINT = $part::UBIGINT)
      AND ($mapfilter IS NULL OR (p.pid, p.vpn) IN (SELECT (pid, vpn) FROM b_in_filter))
    UNION ALL
    SELECT true AS after, p.pid, p.vpn, p.entry
    FROM pages p
    WHERE p.host = $to_host AND p.snapshot_id = $to_id AND p.pid IN (SELECT pid FROM same)
      AND (coalesce($parts, 1) = 1 OR hash(p.pid) % $parts::UBIGINT = $part::UBIGINT)
      AND ($mapfilter IS NULL OR (p.pid, p.vpn) IN (SELECT (pid, vpn) FROM a_in_filter))
),
fr AS (
    SELECT false AS after, pfn, mapcount FROM frames WHERE host = $from_host AND snapshot_id = $from_id
    UNION ALL
    SELECT true AS after, pfn, mapcount FROM frames WHERE host = $to_host AND snapshot_id = $to_id
),
pv AS (
    SELECT u.pid,
           max(u.entry) FILTER (WHERE NOT u.after) AS be, max(u.entry) FILTER (WHERE u.after) AS ae,
           max(fr.mapcount) FILTER (WHERE NOT u.after) AS bm, max(fr.mapcount) FILTER (WHERE u.after) AS am
    FROM u
    LEFT JOIN fr ON fr.after = u.after AND fr.pfn = u.entry & 36028797018963967 AND ((u.entry >> 63) & 1) = 1
    GROUP BY u.pid, u.vpn
),
j AS (
    SELECT pid, be, ae, bm, am,
           coalesce(((be >> 63) & 1) = 1, false) AS bp, coalesce(((ae >> 63) & 1) = 1, false) AS ap,
           coalesce(((be >> 62) & 1) = 1, false) AS bs, coalesce(((ae >> 62) & 1) = 1, false) AS aswp
    FROM pv
)
SELECT pid,
    count(*) FILTER (WHERE bp AND ap AND (be & 36028797018963967) <> (ae & 36028797018963967)
                     AND bm > 1 AND am <= 1) * (SELECT ps FROM ps) // 1024 AS became_private_kb,
    count(*) FILTER (WHERE bp AND ap AND bm <= 1 AND am > 1) * (SELECT ps FROM ps) // 1024 AS became_shared_kb,
    count(*) FILTER (WHERE be IS NULL) * (SELECT ps FROM ps) // 1024 AS new_pages_kb,
    count(*) FILTER (WHERE ae IS NULL) * (SELECT ps FROM ps) // 1024 AS gone_pages_kb,
    count(*) FILTER (WHERE bp AND aswp) * (SELECT ps FROM ps) // 1024 AS swapped_out_kb,
    count(*) FILTER (WHERE bs AND ap) * (SELECT ps FROM ps) // 1024 AS swapped_in_kb
FROM j
GROUP BY pid
