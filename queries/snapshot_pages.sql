-- name: snapshot_pages
-- kind: macro
-- description: Table macro snapshot_pages(host, snapshot_id): every present page of one snapshot with its frame (pfn, kpagecount mapcount, kpageflags), whether smaps would count it (not the zero page, not a pf/io mapping, not hugetlb) and its kind (anon, shmem, file). The base of shared-page attribution.
CREATE OR REPLACE MACRO snapshot_pages(h, sid) AS TABLE
WITH snap AS (
    SELECT page_size_bytes AS ps FROM snapshots WHERE host = h AND snapshot_id = sid
),
m AS (
    SELECT pid, idx, coalesce(path, '<anonymous>') AS map,
           list_has_any(string_split(coalesce(vm_flags, ''), ' '), ['pf', 'io']) AS special,
           list_contains(string_split(coalesce(vm_flags, ''), ' '), 'ht') AS hugetlb_vma
    FROM mappings WHERE host = h AND snapshot_id = sid
),
p AS (
    SELECT pid, vpn, map_idx, entry & 36028797018963967 AS pfn
    FROM pages WHERE host = h AND snapshot_id = sid AND ((entry >> 63) & 1) = 1
),
-- the page's mapping by (pid, map_idx): an equi-join (stores before schema 4 get map_idx from the pages view)
pm AS (
    SELECT p.pid, p.vpn, p.pfn, m.idx, m.map, m.special, m.hugetlb_vma
    FROM p JOIN m ON p.pid = m.pid AND p.map_idx = m.idx
)
SELECT pm.pid, pm.vpn, pm.idx, pm.map, pm.pfn, f.mapcount, f.flags, (SELECT ps FROM snap) AS ps,
       NOT pm.special AND NOT pm.hugetlb_vma AND ((f.flags >> 24) & 1) = 0 AND ((f.flags >> 17) & 1) = 0
           AS counted,
       CASE WHEN ((f.flags >> 12) & 1) = 1 THEN 'anon'
            WHEN ((f.flags >> 14) & 1) = 1 THEN 'shmem' ELSE 'file' END AS kind
FROM pm JOIN frames f ON f.host = h AND f.snapshot_id = sid AND f.pfn = pm.pfn
