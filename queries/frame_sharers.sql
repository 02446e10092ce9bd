-- name: frame_sharers
-- kind: view
-- description: Every distinct frame of every snapshot with the recorded processes mapping it: sharers (distinct pids), pids (sorted list), mappings seen, kpagecount mapcount (all processes, recorded or not), flags and kind (anon, shmem, file).
SELECT p.host, p.snapshot_id, p.entry & 36028797018963967 AS pfn,
       count(DISTINCT p.pid) AS sharers, list(DISTINCT p.pid ORDER BY p.pid) AS pids, count(*) AS mappings_seen,
       any_value(f.mapcount) AS mapcount, any_value(f.flags) AS flags,
       CASE WHEN ((any_value(f.flags) >> 12) & 1) = 1 THEN 'anon'
            WHEN ((any_value(f.flags) >> 14) & 1) = 1 THEN 'shmem' ELSE 'file' END AS kind
FROM pages p
JOIN frames f ON f.host = p.host AND f.snapshot_id = p.snapshot_id AND f.pfn = p.entry & 36028797018963967
WHERE ((p.entry >> 63) & 1) = 1
GROUP BY p.host, p.snapshot_id, p.entry & 36028797018963967
