-- name: shared_pairs
-- kind: query
-- description: Process x process shared memory: for each pair of processes, the kB of distinct frames both map. Frames are grouped by their exact set of sharers first, so widely shared libraries cost one row per set, not per frame.
-- params: host: host; snapshot_id: snapshot; pfilter: -P regex or NULL; ufilter: -U regex or NULL; pids: a list of pids, only pairs of two of them, or NULL for every pair
WITH mem AS (SELECT * FROM shared_members($host, $snapshot_id, 'pid', NULL, $pfilter, $ufilter)),
pf AS (
    SELECT * FROM member_frames($host, $snapshot_id, $pfilter, $ufilter)
    WHERE $pids IS NULL OR list_contains($pids, pid)
),
sets AS (SELECT list(pid ORDER BY pid) AS pids FROM pf GROUP BY pfn HAVING count(*) >= 2),
-- one row per distinct set (a GROUP BY, not a window: Spark numbers rows only in a defined order)
setc AS (SELECT row_number() OVER (ORDER BY pids) AS set_id, pids, count(*) AS frames FROM sets GROUP BY pids),
members AS (SELECT set_id, frames, unnest(pids) AS pid FROM setc),
-- the self-join streams into an aggregate of at most processes^2 groups: no per-frame expansion is stored
pairs AS (
    SELECT a.pid AS pid_a, b.pid AS pid_b, sum(a.frames)::BIGINT AS frames
    FROM members a JOIN members b ON a.set_id = b.set_id AND a.pid < b.pid
    GROUP BY a.pid, b.pid
),
ps AS (SELECT page_size_bytes AS ps FROM snapshots WHERE host = $host AND snapshot_id = $snapshot_id)
SELECT p.pid_a, ma.comm AS name_a, p.pid_b, mb.comm AS name_b, p.frames * (SELECT ps FROM ps) // 1024 AS shared_kb
FROM pairs p JOIN mem ma ON ma.pid = p.pid_a JOIN mem mb ON mb.pid = p.pid_b
ORDER BY shared_kb DESC, p.pid_a, p.pid_b
