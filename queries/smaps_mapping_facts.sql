-- name: smaps_mapping_facts
-- kind: query
-- description: Per mapping of the chosen snapshots, the kernel's own smaps figures in kB (the --source smaps facts behind `memsnap sizes`).
-- params: snapshot_ids: list of snapshot ids
-- A snapshot is identified by (host, snapshot_id): the same id can appear under several host partitions when
-- stores are merged (a copied store), so host is carried in every key.
SELECT
    m.host, m.snapshot_id, m.pid, m.idx,
    coalesce(m.path, '<anonymous>') AS map, m.perms, m.offset_bytes,
    coalesce(m.size_kb, (m.end_addr - m.start_addr) // 1024)::BIGINT AS vss_kb,
    m.rss_kb,
    m.pss_kb,
    m.private_clean_kb + m.private_dirty_kb AS uss_kb,
    m.swap_kb,
    m.swap_pss_kb,
    m.anonymous_kb AS anon_kb,
    m.shared_hugetlb_kb + m.private_hugetlb_kb AS hugetlb_kb,
    m.anon_huge_pages_kb + m.shmem_pmd_mapped_kb + m.file_pmd_mapped_kb AS thp_kb,
    m.source = 'smaps' AS has_smaps
FROM mappings m
WHERE m.snapshot_id IN (SELECT unnest($snapshot_ids))
