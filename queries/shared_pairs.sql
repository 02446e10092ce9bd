-- name: shared_pairs
-- kind: query
-- description: Process x process shared memory: for each pair of processes, the kB of distinct frames both map. Frames are grouped by their exact set of sharers first, so widely shared libraries cost one row per set, not per frame.
-- params: host: host; snapshot_id: snapshot; pfilter: -P regex or NULL; ufilter: -U regex or NULL
WITH mem AS (SELECT * FROM shared_members($host, $snapshot_id, 'pid', NULL, $pfilter, $ufilter)),
pf AS (
    SELECT DISTINCT p.pid, p.pfn FROM snapshot_pages($host, $snapshot_id) p
    WHERE p.counted AND p.pid IN (SELECT pid FROM mem)
),
sets AS (SELECT list(pid ORDER BY pid) AS pids FROM pf GROUP BY pfn HAVING count(*) >= 2),
setc AS (SELECT pids, count(*) AS frames FROM sets GROUP BY pids),
ex AS (SELECT pids, frames, unnest(pids) AS pid_a FROM setc),
ex2 AS (SELECT pid_a, unnest(pids) AS pid_b, frames FROM ex),
ps AS (SELECT page_size_bytes AS ps FROM snapshots WHERE host = $host AND snapshot_id = $snapshot_id)
SELECT e.pid_a, ma.comm AS name_a, e.pid_b, mb.comm AS name_b,
       sum(e.frames) * (SELECT ps FROM ps) // 1024 AS shared_kb
FROM ex2 e JOIN mem ma ON ma.pid = e.pid_a JOIN mem mb ON mb.pid = e.pid_b
WHERE e.pid_a < e.pid_b
GROUP BY e.pid_a, ma.comm, e.pid_b, mb.comm
ORDER BY shared_kb DESC, e.pid_a, e.pid_b
