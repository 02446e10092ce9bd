-- name: pages_decoded
-- kind: view
-- description: Every stored pagemap entry with its bits decoded into named columns (pfn, swap type/offset, flags); see docs.kernel.org/admin-guide/mm/pagemap.html
SELECT
    snapshot_id, host, pid, vpn, entry,
    ((entry >> 63) & 1) = 1 AS present,
    ((entry >> 62) & 1) = 1 AS swapped,
    ((entry >> 61) & 1) = 1 AS file_or_shared_anon,
    ((entry >> 58) & 1) = 1 AS guard,
    ((entry >> 57) & 1) = 1 AS uffd_wp,
    ((entry >> 56) & 1) = 1 AS exclusive,
    ((entry >> 55) & 1) = 1 AS soft_dirty,
    CASE WHEN ((entry >> 63) & 1) = 1 THEN entry & 36028797018963967 END AS pfn,
    CASE WHEN ((entry >> 62) & 1) = 1 THEN entry & 31 END AS swap_type,
    CASE WHEN ((entry >> 62) & 1) = 1 THEN (entry >> 5) & 1125899906842623 END AS swap_offset
FROM pages
