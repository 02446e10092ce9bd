-- name: process_impact
-- kind: query
-- description: Per process of the chosen snapshots, the sources read and whether it was recorded in low-impact mode (`memsnap record --impact low`, or above --impact-threshold-mb): pagemap read, neither smaps nor smaps_rollup. `memsnap sizes` gives the figures of those processes from pages, as --source pages computes them. Kernel threads excluded.
-- params: snapshot_ids: list of snapshot ids
SELECT p.host, p.snapshot_id, p.pid, p.comm, p.sources,
       list_contains(string_split(coalesce(p.sources, ''), ','), 'pagemap')
           AND NOT list_has_any(string_split(coalesce(p.sources, ''), ','), ['smaps', 'smaps_rollup']) AS low_impact
FROM processes p
WHERE p.snapshot_id IN (SELECT unnest($snapshot_ids))
  AND NOT coalesce(p.kernel_thread, false)
ORDER BY p.host, p.snapshot_id, p.pid
