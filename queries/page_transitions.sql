-- name: page_transitions
-- kind: query
-- description: Per process present in both snapshots with the same identity (pid and start time), kB of pages that became private (copy-on-write break: PFN changed, shared before, private after), became shared, appeared, disappeared, were swapped out or swapped in. Needs PFNs in both snapshots.
-- params: from_host: host of the earlier snapshot; from_id: earlier snapshot id; to_host: host of the later snapshot; to_id: later snapshot id; mapfilter: regex on mapping path, or NULL for all pages
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
b AS (
    SELECT p.pid, p.vpn, p.entry, f.mapcount
    FROM pages p
    LEFT JOIN frames f ON f.host = p.host AND f.snapshot_id = p.snapshot_id
         AND f.pfn = p.entry & 36028797018963967 AND ((p.entry >> 63) & 1) = 1
    WHERE p.host = $from_host AND p.snapshot_id = $from_id AND p.pid IN (SELECT pid FROM same)
      AND ($mapfilter IS NULL OR (p.pid, p.vpn) IN (SELECT (pid, vpn) FROM b_in_filter))
),
a AS (
    SELECT p.pid, p.vpn, p.entry, f.mapcount
    FROM pages p
    LEFT JOIN frames f ON f.host = p.host AND f.snapshot_id = p.snapshot_id
         AND f.pfn = p.entry & 36028797018963967 AND ((p.entry >> 63) & 1) = 1
    WHERE p.host = $to_host AND p.snapshot_id = $to_id AND p.pid IN (SELECT pid FROM same)
      AND ($mapfilter IS NULL OR (p.pid, p.vpn) IN (SELECT (pid, vpn) FROM a_in_filter))
),
j AS (
    SELECT coalesce(b.pid, a.pid) AS pid,
           b.entry AS be, a.entry AS ae, b.mapcount AS bm, a.mapcount AS am,
           coalesce(((b.entry >> 63) & 1) = 1, false) AS bp, coalesce(((a.entry >> 63) & 1) = 1, false) AS ap,
           coalesce(((b.entry >> 62) & 1) = 1, false) AS bs, coalesce(((a.entry >> 62) & 1) = 1, false) AS aswp
    FROM b FULL OUTER JOIN a ON a.pid = b.pid AND a.vpn = b.vpn
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
