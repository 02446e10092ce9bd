-- name: shared_reconcile
-- kind: query
-- description: Distinct frames mapped by all recorded processes, by kind, against /proc/meminfo; the used memory no recorded process maps is an explicit unaccounted row, so used + unaccounted + free = MemTotal.
-- params: host: host; snapshot_id: snapshot
WITH fr AS (
    SELECT p.pfn, any_value(p.kind) AS kind, any_value(p.flags) AS flags, any_value(p.ps) AS ps
    FROM snapshot_pages($host, $snapshot_id) p GROUP BY p.pfn
),
k AS (
    SELECT count(*) FILTER (WHERE kind = 'anon' AND ((flags >> 24) & 1) = 0) * any_value(ps) // 1024 AS anon,
           count(*) FILTER (WHERE kind = 'file' AND ((flags >> 24) & 1) = 0) * any_value(ps) // 1024 AS file,
           count(*) FILTER (WHERE kind = 'shmem') * any_value(ps) // 1024 AS shmem,
           count(*) * any_value(ps) // 1024 AS all_frames
    FROM fr
),
mi AS (SELECT key, value_kb FROM meminfo WHERE host = $host AND snapshot_id = $snapshot_id),
v AS (SELECT (SELECT value_kb FROM mi WHERE key = 'MemTotal') AS total,
             (SELECT value_kb FROM mi WHERE key = 'MemFree') AS free,
             (SELECT value_kb FROM mi WHERE key = 'AnonPages') AS anonpages,
             (SELECT value_kb FROM mi WHERE key = 'Mapped') AS mapped,
             (SELECT value_kb FROM mi WHERE key = 'Shmem') AS shmem_mi)
SELECT * FROM (
    -- one SELECT per row, not VALUES: Spark takes only constants in VALUES
    SELECT 1 AS ord, 'anonymous frames mapped' AS area, (SELECT anon FROM k) AS kb, 'AnonPages' AS meminfo_key,
           (SELECT anonpages FROM v) AS meminfo_kb
    UNION ALL SELECT 2, 'file frames mapped', (SELECT file FROM k), NULL, NULL
    UNION ALL SELECT 3, 'shmem/tmpfs frames mapped', (SELECT shmem FROM k), 'Shmem', (SELECT shmem_mi FROM v)
    UNION ALL SELECT 4, 'file + shmem frames mapped', (SELECT file + shmem FROM k), 'Mapped', (SELECT mapped FROM v)
    UNION ALL SELECT 5, 'all frames mapped by recorded processes', (SELECT all_frames FROM k), 'MemTotal - MemFree',
        (SELECT total - free FROM v)
    UNION ALL SELECT 6, 'unaccounted: used, not mapped by a recorded process (kernel, unmapped cache, other processes)',
        (SELECT total - free FROM v) - (SELECT all_frames FROM k), NULL, NULL
    UNION ALL SELECT 7, 'free', (SELECT free FROM v), 'MemFree', (SELECT free FROM v)
    UNION ALL SELECT 8, 'total (rows 5 + 6 + 7)', (SELECT total FROM v), 'MemTotal', (SELECT total FROM v)
) AS t
ORDER BY ord
