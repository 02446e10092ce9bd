-- name: snapshot_pages
-- kind: macro
-- description: Table macro snapshot_pages(host, snapshot_id): every present page of one snapshot with its frame (pfn, kpagecount mapcount, kpageflags), whether smaps would count it (not the zero page, not a pf/io mapping, not hugetlb) and its kind (anon, shmem, file). The base of shared-page attribution.
CREATE OR REPLACE MACRO snapshot_pages(h, sid) AS TABLE
WITH snap AS (
    SELECT page_size_bytes AS ps FROM snapshots WHERE host = h AND snapshot_id = sid
),
m AS (
    SELECT pid, idx, coalesce(path, '<anonymous>') AS map,
           -- UBIGINT like vpn (a BIGINT page size made the ASOF join compare vpn as HUGEINT: 1.7x its cost)
           start_addr // (SELECT ps::UBIGINT FROM snap) AS start_vpn,
           end_addr // (SELECT ps::UBIGINT FROM snap) AS end_vpn,
           list_has_any(string_split(coalesce(vm_flags, ''), ' '), ['pf', 'io']) AS special,
           list_contains(string_split(coalesce(vm_flags, ''), ' '), 'ht') AS hugetlb_vma
    FROM mappings WHERE host = h AND snapshot_id = sid
),
p AS (
    SELECT pid, vpn, entry & 36028797018963967 AS pfn
    FROM pages WHERE host = h AND snapshot_id = sid AND ((entry >> 63) & 1) = 1
),
pm AS (
    SELECT p.*, m.idx, m.map, m.special, m.hugetlb_vma
    FROM p ASOF JOIN m ON p.pid = m.pid AND p.vpn >= m.start_vpn
    WHERE p.vpn < m.end_vpn
)
SELECT pm.pid, pm.vpn, pm.idx, pm.map, pm.pfn, f.mapcount, f.flags, (SELECT ps FROM snap) AS ps,
       NOT pm.special AND NOT pm.hugetlb_vma AND ((f.flags >> 24) & 1) = 0 AND ((f.flags >> 17) & 1) = 0
           AS counted,
       CASE WHEN ((f.flags >> 12) & 1) = 1 THEN 'anon'
            WHEN ((f.flags >> 14) & 1) = 1 THEN 'shmem' ELSE 'file' END AS kind
FROM pm JOIN frames f ON f.host = h AND f.snapshot_id = sid AND f.pfn = pm.pfn
