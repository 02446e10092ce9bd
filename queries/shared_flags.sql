-- name: shared_flags
-- kind: query
-- description: Distinct frames mapped by the selected processes, by page kind from kpageflags (a frame can be in several kinds, e.g. anon and thp): anon, file, shmem, ksm, thp, zero_page, hugetlb, mlocked, unevictable.
-- params: host: host; snapshot_id: snapshot; pfilter: -P regex or NULL; ufilter: -U regex or NULL
WITH mem AS (SELECT * FROM shared_members($host, $snapshot_id, 'pid', NULL, $pfilter, $ufilter)),
fr AS (
    SELECT p.pfn, any_value(p.flags) AS flags, any_value(p.kind) AS kind, any_value(p.ps) AS ps,
           count(*) AS mappings, count(DISTINCT p.pid) AS processes
    FROM snapshot_pages($host, $snapshot_id) p WHERE p.pid IN (SELECT pid FROM mem)
    GROUP BY p.pfn
),
k AS (
    SELECT unnest([
        CASE WHEN kind = 'anon' AND ((flags >> 24) & 1) = 0 THEN 'anon' END,
        CASE WHEN kind = 'file' AND ((flags >> 24) & 1) = 0 AND ((flags >> 17) & 1) = 0 THEN 'file' END,
        CASE WHEN kind = 'shmem' AND ((flags >> 17) & 1) = 0 THEN 'shmem' END,
        CASE WHEN ((flags >> 21) & 1) = 1 THEN 'ksm' END,
        CASE WHEN ((flags >> 22) & 1) = 1 THEN 'thp' END,
        CASE WHEN ((flags >> 24) & 1) = 1 THEN 'zero_page' END,
        CASE WHEN ((flags >> 17) & 1) = 1 THEN 'hugetlb' END,
        CASE WHEN ((flags >> 33) & 1) = 1 THEN 'mlocked' END,
        CASE WHEN ((flags >> 18) & 1) = 1 THEN 'unevictable' END
    ]) AS page_kind, ps, mappings
    FROM fr
)
SELECT page_kind, count(*) AS frames, count(*) * any_value(ps) // 1024 AS kb, sum(mappings)::BIGINT AS mappings
FROM k WHERE page_kind IS NOT NULL
GROUP BY page_kind
ORDER BY list_position(['anon', 'file', 'shmem', 'ksm', 'thp', 'zero_page', 'hugetlb', 'mlocked', 'unevictable'],
                       page_kind)
