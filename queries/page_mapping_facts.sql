-- name: page_mapping_facts
-- kind: query
-- description: Per mapping of the chosen snapshots, sizes recomputed from pagemap + kpagecount + kpageflags with the kernel's smaps rules; PSS columns are unfloored fixed point (bytes << 12), *_pages are page counts.
-- params: snapshot_ids: list of snapshot ids
-- Rules (reproduced exactly on Linux 6.18, see docs/design.md and fs/proc/task_mmu.c smaps_account()):
--   * Rss counts present pages, except the zero page (kpageflags bit 24), pages of VM_PFNMAP/VM_IO mappings
--     (VmFlags pf/io) and hugetlb pages (kpageflags bit 17, or VmFlags ht), which only go to *_Hugetlb;
--   * each page adds (page_size << 12) / mapcount to PSS, or page_size << 12 when mapcount < 2;
--   * private (USS) means mapcount <= 1;
--   * Pss_Anon/Shmem/File split by kpageflags ANON (12) and SWAPBACKED (14);
--   * SwapPss divides each swap entry by the number of its references among the recorded processes.
-- A snapshot is identified by (host, snapshot_id): the same id can appear under several host partitions when
-- stores are merged (a copied store), so host is part of every join key.
-- Performance (bench/sizes_bench.py, 5.2M pages): a small integer snapshot key (sk) instead of the
-- (host, snapshot_id) strings in joins; swap references counted by a GROUP BY over swapped rows only; since
-- schema 4 no page-to-mapping join (pages.map_idx, below; it was an ASOF join by address, 27 % of the CPU).
WITH snap AS (
    SELECT host, snapshot_id, page_size_bytes::UBIGINT AS ps,
           (row_number() OVER (ORDER BY host, snapshot_id))::INTEGER AS sk
    FROM snapshots WHERE snapshot_id IN (SELECT unnest($snapshot_ids))
),
m AS (
    SELECT snap.sk, m.host, m.snapshot_id, m.pid, m.idx, snap.ps, coalesce(m.path, '<anonymous>') AS map, m.perms,
           m.offset_bytes, (m.end_addr - m.start_addr) // 1024 AS vss_kb,
           list_has_any(string_split(coalesce(m.vm_flags, ''), ' '), ['pf', 'io']) AS special,
           list_contains(string_split(coalesce(m.vm_flags, ''), ' '), 'ht') AS hugetlb_vma
    FROM mappings m JOIN snap USING (host, snapshot_id)
),
-- Pages join mappings on (pid, map_idx = idx) (schema 4; older stores' map_idx comes by address from the
-- `pages` view): pages and frames are aggregated per (pid, map_idx) first, and the mapping's flags (pf/io,
-- ht), the same for all its pages, applied to the aggregate; no page row is joined to a mapping at all.
-- Everything a page adds depends on its frame only, so it is worked out once per frame (f: the kind of the
-- frame as bits, and its PSS share), not once per page; the pages are counted per (pid, mapping, kind of
-- frame) with two aggregates (k), and the 13 figures per mapping come from those few rows (agg0): at 5.2M
-- pages, 2.3 s of CPU against 3.0 s for 13 filtered aggregates over the page rows (issue 15).
-- cls bits: 1 counted (not the zero page, kpageflags bit 24, nor hugetlb, bit 17), 2 private (mapcount <= 1),
-- 4 anon (bit 12), 8 shmem (bit 14 without 12), 16 hugetlb (bit 17), 32 THP (bit 22), 64 no mapcount.  A page
-- without a frames row (kpage read failed) is 67 = counted, private, no mapcount, its share a whole page.
f AS (
    SELECT snap.sk, f.pfn,
           CASE WHEN (f.flags IS NULL OR ((f.flags >> 24) & 1) = 0) AND (f.flags IS NULL OR ((f.flags >> 17) & 1) = 0)
                THEN 1 ELSE 0 END
           + CASE WHEN coalesce(f.mapcount, 0) <= 1 THEN 2 ELSE 0 END
           + CASE WHEN ((f.flags >> 12) & 1) = 1 THEN 4 ELSE 0 END
           + CASE WHEN ((f.flags >> 12) & 1) = 0 AND ((f.flags >> 14) & 1) = 1 THEN 8 ELSE 0 END
           + CASE WHEN ((f.flags >> 17) & 1) = 1 THEN 16 ELSE 0 END
           + CASE WHEN ((f.flags >> 22) & 1) = 1 THEN 32 ELSE 0 END
           + CASE WHEN f.mapcount IS NULL THEN 64 ELSE 0 END AS cls,
           CASE WHEN f.mapcount >= 2 THEN (snap.ps << 12) // f.mapcount ELSE snap.ps << 12 END AS pss_fp
    FROM frames f JOIN snap USING (host, snapshot_id)
),
-- present pages (bit 63); the swapped ones (bit 62) are read again below, which costs less than keeping them
p AS (
    SELECT snap.sk, p.pid, p.map_idx AS idx, snap.ps, p.entry & 36028797018963967 AS pfn
    FROM pages p JOIN snap USING (host, snapshot_id)
    WHERE p.map_idx IS NOT NULL AND ((p.entry >> 63) & 1) = 1
),
k AS (
    SELECT p.sk, p.pid, p.idx, coalesce(f.cls, 67) AS cls, count(*) AS n,
           sum(coalesce(f.pss_fp, p.ps << 12))::BIGINT AS pss_fp
    FROM p LEFT JOIN f ON f.sk = p.sk AND f.pfn = p.pfn
    GROUP BY p.sk, p.pid, p.idx, coalesce(f.cls, 67)
),
agg0 AS (
    SELECT
        sk, pid, idx,
        sum(n)::BIGINT AS present_pages,
        sum(CASE WHEN (cls & 1) = 1 THEN n ELSE 0 END)::BIGINT AS rss_pages,
        sum(CASE WHEN (cls & 1) = 1 THEN pss_fp ELSE 0 END)::BIGINT AS pss_fp,
        sum(CASE WHEN (cls & 3) = 3 THEN n ELSE 0 END)::BIGINT AS uss_pages,
        sum(CASE WHEN (cls & 5) = 5 THEN n ELSE 0 END)::BIGINT AS anon_pages,
        sum(CASE WHEN (cls & 13) = 1 THEN n ELSE 0 END)::BIGINT AS file_pages,
        sum(CASE WHEN (cls & 9) = 9 THEN n ELSE 0 END)::BIGINT AS shmem_pages,
        sum(CASE WHEN (cls & 5) = 5 THEN pss_fp ELSE 0 END)::BIGINT AS pss_anon_fp,
        sum(CASE WHEN (cls & 13) = 1 THEN pss_fp ELSE 0 END)::BIGINT AS pss_file_fp,
        sum(CASE WHEN (cls & 9) = 9 THEN pss_fp ELSE 0 END)::BIGINT AS pss_shmem_fp,
        sum(CASE WHEN (cls & 16) = 16 THEN n ELSE 0 END)::BIGINT AS huge_pages,
        sum(CASE WHEN (cls & 33) = 33 THEN n ELSE 0 END)::BIGINT AS thp_pages,
        sum(CASE WHEN (cls & 64) = 64 THEN n ELSE 0 END)::BIGINT AS unknown_frames
    FROM k
    GROUP BY sk, pid, idx
),
-- the mapping's flags: a pf/io or ht mapping counts nothing (its pages all go to *_Hugetlb when ht); a pf/io
-- mapping's frames are not expected in kpage*, so none is unknown
agg AS (
    SELECT a.sk, a.pid, a.idx,
           CASE WHEN m.special OR m.hugetlb_vma THEN 0 ELSE a.rss_pages END AS rss_pages,
           CASE WHEN m.special OR m.hugetlb_vma THEN 0 ELSE a.pss_fp END AS pss_fp,
           CASE WHEN m.special OR m.hugetlb_vma THEN 0 ELSE a.uss_pages END AS uss_pages,
           CASE WHEN m.special OR m.hugetlb_vma THEN 0 ELSE a.anon_pages END AS anon_pages,
           CASE WHEN m.special OR m.hugetlb_vma THEN 0 ELSE a.file_pages END AS file_pages,
           CASE WHEN m.special OR m.hugetlb_vma THEN 0 ELSE a.shmem_pages END AS shmem_pages,
           CASE WHEN m.special OR m.hugetlb_vma THEN 0 ELSE a.pss_anon_fp END AS pss_anon_fp,
           CASE WHEN m.special OR m.hugetlb_vma THEN 0 ELSE a.pss_file_fp END AS pss_file_fp,
           CASE WHEN m.special OR m.hugetlb_vma THEN 0 ELSE a.pss_shmem_fp END AS pss_shmem_fp,
           CASE WHEN m.hugetlb_vma THEN a.present_pages ELSE a.huge_pages END AS hugetlb_pages,
           CASE WHEN m.special OR m.hugetlb_vma THEN 0 ELSE a.thp_pages END AS thp_pages,
           CASE WHEN m.special THEN 0 ELSE a.unknown_frames END AS unknown_frames
    FROM agg0 a JOIN m USING (sk, pid, idx)
),
sw AS (
    SELECT snap.sk, p.pid, p.map_idx AS idx, snap.ps, p.entry & 36028797018963967 AS pfn_or_swap
    FROM pages p JOIN snap USING (host, snapshot_id)
    WHERE p.map_idx IS NOT NULL AND ((p.entry >> 62) & 1) = 1
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
