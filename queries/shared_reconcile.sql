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
SELECT * FROM (VALUES
    (1, 'anonymous frames mapped', (SELECT anon FROM k), 'AnonPages', (SELECT anonpages FROM v)),
    (2, 'file frames mapped', (SELECT file FROM k), NULL, NULL),
    (3, 'shmem/tmpfs frames mapped', (SELECT shmem FROM k), 'Shmem', (SELECT shmem_mi FROM v)),
    (4, 'file + shmem frames mapped', (SELECT file + shmem FROM k), 'Mapped', (SELECT mapped FROM v)),
    (5, 'all frames mapped by recorded processes', (SELECT all_frames FROM k), 'MemTotal - MemFree',
        (SELECT total - free FROM v)),
    (6, 'unaccounted: used, not mapped by a recorded process (kernel, unmapped cache, other processes)',
        (SELECT total - free FROM v) - (SELECT all_frames FROM k), NULL, NULL),
    (7, 'free', (SELECT free FROM v), 'MemFree', (SELECT free FROM v)),
    (8, 'total (rows 5 + 6 + 7)', (SELECT total FROM v), 'MemTotal', (SELECT total FROM v))
) AS t(ord, area, kb, meminfo_key, meminfo_kb)
ORDER BY ord
