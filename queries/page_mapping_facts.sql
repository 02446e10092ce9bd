-- name: page_mapping_facts
-- kind: query
-- description: Per mapping of the chosen snapshots, sizes recomputed from pagemap + kpagecount + kpageflags with the kernel's smaps rules; PSS columns are unfloored fixed point (bytes << 12), *_pages are page counts.
-- params: snapshot_ids: list of snapshot ids
-- Rules (reproduced exactly on Linux 6.18, see DESIGN.md and fs/proc/task_mmu.c smaps_account()):
--   * Rss counts present pages, except the zero page (kpageflags bit 24), pages of VM_PFNMAP/VM_IO mappings
--     (VmFlags pf/io) and hugetlb pages (kpageflags bit 17, or VmFlags ht), which only go to *_Hugetlb;
--   * each page adds (page_size << 12) / mapcount to PSS, or page_size << 12 when mapcount < 2;
--   * private (USS) means mapcount <= 1;
--   * Pss_Anon/Shmem/File split by kpageflags ANON (12) and SWAPBACKED (14);
--   * SwapPss divides each swap entry by the number of its references among the recorded processes.
-- A snapshot is identified by (host, snapshot_id): the same id can appear under several host partitions when
-- stores are merged (a copied store), so host is part of every join key.
WITH snap AS (
    SELECT host, snapshot_id, page_size_bytes AS ps FROM snapshots WHERE snapshot_id IN (SELECT unnest($snapshot_ids))
),
m AS (
    SELECT m.host, m.snapshot_id, m.pid, m.idx, snap.ps, coalesce(m.path, '<anonymous>') AS map, m.perms, m.offset_bytes,
           (m.end_addr - m.start_addr) // 1024 AS vss_kb,
           m.start_addr // snap.ps AS start_vpn, m.end_addr // snap.ps AS end_vpn,
           list_has_any(string_split(coalesce(m.vm_flags, ''), ' '), ['pf', 'io']) AS special,
           list_contains(string_split(coalesce(m.vm_flags, ''), ' '), 'ht') AS hugetlb_vma
    FROM mappings m JOIN snap USING (host, snapshot_id)
),
p AS (
    SELECT p.host, p.snapshot_id, p.pid, p.vpn, p.entry, snap.ps,
           ((p.entry >> 63) & 1) = 1 AS present,
           ((p.entry >> 62) & 1) = 1 AS swapped,
           p.entry & 36028797018963967 AS pfn_or_swap
    FROM pages p JOIN snap USING (host, snapshot_id)
),
pm AS (
    SELECT p.*, m.idx, m.special, m.hugetlb_vma
    FROM p ASOF JOIN m ON p.host = m.host AND p.snapshot_id = m.snapshot_id AND p.pid = m.pid
                          AND p.vpn >= m.start_vpn
    WHERE p.vpn < m.end_vpn
),
pf AS (
    SELECT pm.*, f.mapcount, f.flags,
           pm.present AND (f.flags IS NULL OR ((f.flags >> 24) & 1) = 0) AND NOT pm.special
               AND NOT pm.hugetlb_vma AND (f.flags IS NULL OR ((f.flags >> 17) & 1) = 0) AS counted,
           pm.present AND (pm.hugetlb_vma OR ((f.flags >> 17) & 1) = 1) AS hugetlb,
           CASE WHEN ((f.flags >> 12) & 1) = 1 THEN 'anon'
                WHEN ((f.flags >> 14) & 1) = 1 THEN 'shmem' ELSE 'file' END AS kind,
           CASE WHEN f.mapcount >= 2 THEN (pm.ps << 12) // f.mapcount ELSE pm.ps << 12 END AS pss_fp,
           CASE WHEN pm.swapped THEN count(*) OVER (PARTITION BY pm.host, pm.snapshot_id, pm.swapped, pm.pfn_or_swap) END
               AS swap_refs
    FROM pm LEFT JOIN frames f ON f.host = pm.host AND f.snapshot_id = pm.snapshot_id AND f.pfn = pm.pfn_or_swap
                                  AND pm.present
),
agg AS (
    SELECT
        host, snapshot_id, pid, idx,
        count(*) FILTER (WHERE counted) AS rss_pages,
        coalesce(sum(pss_fp) FILTER (WHERE counted), 0)::BIGINT AS pss_fp,
        count(*) FILTER (WHERE counted AND coalesce(mapcount, 0) <= 1) AS uss_pages,
        count(*) FILTER (WHERE swapped) AS swap_pages,
        coalesce(sum(CASE WHEN swap_refs >= 2 THEN (ps << 12) // swap_refs ELSE ps << 12 END)
                 FILTER (WHERE swapped), 0)::BIGINT AS swap_pss_fp,
        count(*) FILTER (WHERE counted AND kind = 'anon') AS anon_pages,
        count(*) FILTER (WHERE counted AND kind = 'file') AS file_pages,
        count(*) FILTER (WHERE counted AND kind = 'shmem') AS shmem_pages,
        coalesce(sum(pss_fp) FILTER (WHERE counted AND kind = 'anon'), 0)::BIGINT AS pss_anon_fp,
        coalesce(sum(pss_fp) FILTER (WHERE counted AND kind = 'file'), 0)::BIGINT AS pss_file_fp,
        coalesce(sum(pss_fp) FILTER (WHERE counted AND kind = 'shmem'), 0)::BIGINT AS pss_shmem_fp,
        count(*) FILTER (WHERE hugetlb) AS hugetlb_pages,
        count(*) FILTER (WHERE counted AND ((flags >> 22) & 1) = 1) AS thp_pages,
        count(*) FILTER (WHERE present AND mapcount IS NULL AND NOT special) AS unknown_frames
    FROM pf
    GROUP BY host, snapshot_id, pid, idx
)
SELECT
    m.host, m.snapshot_id, m.pid, m.idx, m.map, m.perms, m.offset_bytes, m.vss_kb, m.ps AS page_size_bytes,
    coalesce(a.rss_pages, 0) AS rss_pages, coalesce(a.pss_fp, 0) AS pss_fp, coalesce(a.uss_pages, 0) AS uss_pages,
    coalesce(a.swap_pages, 0) AS swap_pages, coalesce(a.swap_pss_fp, 0) AS swap_pss_fp,
    coalesce(a.anon_pages, 0) AS anon_pages, coalesce(a.file_pages, 0) AS file_pages,
    coalesce(a.shmem_pages, 0) AS shmem_pages, coalesce(a.pss_anon_fp, 0) AS pss_anon_fp,
    coalesce(a.pss_file_fp, 0) AS pss_file_fp, coalesce(a.pss_shmem_fp, 0) AS pss_shmem_fp,
    coalesce(a.hugetlb_pages, 0) AS hugetlb_pages, coalesce(a.thp_pages, 0) AS thp_pages,
    coalesce(a.unknown_frames, 0) AS unknown_frames
FROM m LEFT JOIN agg a USING (host, snapshot_id, pid, idx)
