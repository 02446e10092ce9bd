-- name: page_mapping_facts_alt
-- kind: query
-- description: Benchmark prototype (bench/sizes_bench.py), not shipped: the same result as queries/page_mapping_facts.sql, restructured for speed.
-- params: snapshot_ids: list of snapshot ids
-- Same rules and same output columns as queries/page_mapping_facts.sql.  What differs (measured in
-- bench/out/sizes.md, EXPLAIN ANALYZE in bench/out/sizes_profile.txt):
--   * SwapPss: the swap references are counted by a GROUP BY over the swapped rows only, instead of a
--     window count() OVER (PARTITION BY ..., pfn_or_swap) evaluated for every row (present ones included);
--   * joins, the ASOF join and the GROUP BY use a small integer snapshot key (sk) instead of the
--     (host, snapshot_id) strings, and vpn bounds stay UBIGINT (start_addr // ps with a BIGINT ps made
--     them HUGEINT, so the ASOF join compared 128-bit casts of every vpn);
--   * page kinds are booleans, not strings.
WITH snap AS (
    SELECT host, snapshot_id, page_size_bytes::UBIGINT AS ps,
           (row_number() OVER (ORDER BY host, snapshot_id))::INTEGER AS sk
    FROM snapshots WHERE snapshot_id IN (SELECT unnest($snapshot_ids))
),
m AS (
    SELECT snap.sk, m.host, m.snapshot_id, m.pid, m.idx, snap.ps, coalesce(m.path, '<anonymous>') AS map, m.perms,
           m.offset_bytes, (m.end_addr - m.start_addr) // 1024 AS vss_kb,
           m.start_addr // snap.ps AS start_vpn, m.end_addr // snap.ps AS end_vpn,
           list_has_any(string_split(coalesce(m.vm_flags, ''), ' '), ['pf', 'io']) AS special,
           list_contains(string_split(coalesce(m.vm_flags, ''), ' '), 'ht') AS hugetlb_vma
    FROM mappings m JOIN snap USING (host, snapshot_id)
),
p AS (
    SELECT snap.sk, p.pid, p.vpn, snap.ps,
           (p.entry >> 63) = 1 AS present,
           ((p.entry >> 62) & 1) = 1 AS swapped,
           p.entry & 36028797018963967 AS pfn_or_swap
    FROM pages p JOIN snap USING (host, snapshot_id)
),
pm AS (
    SELECT p.sk, p.pid, p.ps, p.present, p.swapped, p.pfn_or_swap, m.idx, m.special, m.hugetlb_vma
    FROM p ASOF JOIN m ON p.sk = m.sk AND p.pid = m.pid AND p.vpn >= m.start_vpn
    WHERE p.vpn < m.end_vpn
),
f AS (
    SELECT snap.sk, f.pfn, f.mapcount, f.flags FROM frames f JOIN snap USING (host, snapshot_id)
),
pf AS (
    SELECT pm.sk, pm.pid, pm.idx, pm.special, f.mapcount, f.flags,
           (f.flags IS NULL OR ((f.flags >> 24) & 1) = 0) AND NOT pm.special AND NOT pm.hugetlb_vma
               AND (f.flags IS NULL OR ((f.flags >> 17) & 1) = 0) AS counted,
           pm.hugetlb_vma OR ((f.flags >> 17) & 1) = 1 AS hugetlb,
           coalesce(((f.flags >> 12) & 1) = 1, false) AS is_anon,
           coalesce(((f.flags >> 12) & 1) = 0 AND ((f.flags >> 14) & 1) = 1, false) AS is_shmem,
           CASE WHEN f.mapcount >= 2 THEN (pm.ps << 12) // f.mapcount ELSE pm.ps << 12 END AS pss_fp
    FROM pm LEFT JOIN f ON f.sk = pm.sk AND f.pfn = pm.pfn_or_swap
    WHERE pm.present
),
agg AS (
    SELECT
        sk, pid, idx,
        count(*) FILTER (WHERE counted) AS rss_pages,
        coalesce(sum(pss_fp) FILTER (WHERE counted), 0)::BIGINT AS pss_fp,
        count(*) FILTER (WHERE counted AND coalesce(mapcount, 0) <= 1) AS uss_pages,
        count(*) FILTER (WHERE counted AND is_anon) AS anon_pages,
        count(*) FILTER (WHERE counted AND NOT is_anon AND NOT is_shmem) AS file_pages,
        count(*) FILTER (WHERE counted AND is_shmem) AS shmem_pages,
        coalesce(sum(pss_fp) FILTER (WHERE counted AND is_anon), 0)::BIGINT AS pss_anon_fp,
        coalesce(sum(pss_fp) FILTER (WHERE counted AND NOT is_anon AND NOT is_shmem), 0)::BIGINT AS pss_file_fp,
        coalesce(sum(pss_fp) FILTER (WHERE counted AND is_shmem), 0)::BIGINT AS pss_shmem_fp,
        count(*) FILTER (WHERE hugetlb) AS hugetlb_pages,
        count(*) FILTER (WHERE counted AND ((flags >> 22) & 1) = 1) AS thp_pages,
        count(*) FILTER (WHERE mapcount IS NULL AND NOT special) AS unknown_frames
    FROM pf
    GROUP BY sk, pid, idx
),
sw AS (
    SELECT sk, pid, idx, ps, pfn_or_swap FROM pm WHERE swapped
),
swrefs AS (
    SELECT sk, pfn_or_swap, count(*) AS refs FROM sw GROUP BY sk, pfn_or_swap
),
swagg AS (
    SELECT sw.sk, sw.pid, sw.idx, count(*) AS swap_pages,
           sum(CASE WHEN r.refs >= 2 THEN (sw.ps << 12) // r.refs ELSE sw.ps << 12 END)::BIGINT AS swap_pss_fp
    FROM sw JOIN swrefs r USING (sk, pfn_or_swap)
    GROUP BY sw.sk, sw.pid, sw.idx
)
SELECT
    m.host, m.snapshot_id, m.pid, m.idx, m.map, m.perms, m.offset_bytes, m.vss_kb, m.ps::BIGINT AS page_size_bytes,
    coalesce(a.rss_pages, 0) AS rss_pages, coalesce(a.pss_fp, 0) AS pss_fp, coalesce(a.uss_pages, 0) AS uss_pages,
    coalesce(s.swap_pages, 0) AS swap_pages, coalesce(s.swap_pss_fp, 0) AS swap_pss_fp,
    coalesce(a.anon_pages, 0) AS anon_pages, coalesce(a.file_pages, 0) AS file_pages,
    coalesce(a.shmem_pages, 0) AS shmem_pages, coalesce(a.pss_anon_fp, 0) AS pss_anon_fp,
    coalesce(a.pss_file_fp, 0) AS pss_file_fp, coalesce(a.pss_shmem_fp, 0) AS pss_shmem_fp,
    coalesce(a.hugetlb_pages, 0) AS hugetlb_pages, coalesce(a.thp_pages, 0) AS thp_pages,
    coalesce(a.unknown_frames, 0) AS unknown_frames
FROM m LEFT JOIN agg a USING (sk, pid, idx) LEFT JOIN swagg s USING (sk, pid, idx)
