-- name: member_frames
-- kind: macro
-- description: Table macro member_frames(h, sid, pfilter, ufilter): the distinct (pid, pfn) of the counted pages of the processes that pass the -P/-U filters (kernel threads excluded): which frames each recorded process maps. The base of shared_pairs and shared_pair_totals.
CREATE OR REPLACE MACRO member_frames(h, sid, pfilter, ufilter) AS TABLE
SELECT DISTINCT p.pid, p.pfn
FROM snapshot_pages(h, sid) p
WHERE p.counted AND p.pid IN (SELECT pid FROM shared_members(h, sid, 'pid', NULL, pfilter, ufilter))
