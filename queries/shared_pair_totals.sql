-- name: shared_pair_totals
-- kind: query
-- description: Per process: shared_frames, the distinct frames it maps that at least one other recorded process maps too (no pair of it shares more), and pair_frames, the sum over its pairs of the frames each pair shares (what the shared_pairs rows of the process add up to, in frames). Without forming the pairs: the bound and the ranking behind `memsnap shared --pairs --limit N` and the report's heatmap.
-- params: host: host; snapshot_id: snapshot; pfilter: -P regex or NULL; ufilter: -U regex or NULL
WITH pf AS (SELECT * FROM member_frames($host, $snapshot_id, $pfilter, $ufilter)),
fs AS (SELECT pfn, count(*) AS sharers FROM pf GROUP BY pfn HAVING count(*) >= 2)
SELECT pf.pid, count(*) AS shared_frames, sum(fs.sharers - 1)::BIGINT AS pair_frames
FROM pf JOIN fs USING (pfn)
GROUP BY pf.pid
ORDER BY shared_frames DESC, pf.pid
