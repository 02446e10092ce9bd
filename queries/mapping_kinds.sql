-- name: mapping_kinds
-- kind: view
-- description: Every mapping with its kind: heap, stack, anon (private anonymous), shmem (shared anonymous, memfd, /dev/shm, SysV), file, vdso/vvar/vsyscall (special), hugetlb; plus size and smaps figures in kB.
SELECT host, snapshot_id, pid, idx, start_addr, end_addr, perms, offset_bytes, path,
       CASE
           WHEN list_contains(string_split(coalesce(vm_flags, ''), ' '), 'ht') THEN 'hugetlb'
           WHEN path IN ('[vdso]', '[vvar]', '[vvar_vclock]', '[vsyscall]', '[uprobes]')
                OR list_has_any(string_split(coalesce(vm_flags, ''), ' '), ['pf', 'io']) THEN 'special'
           WHEN path = '[heap]' THEN 'heap'
           WHEN path LIKE '[stack%' THEN 'stack'
           WHEN path LIKE '/memfd:%' OR path LIKE '/dev/shm/%' OR path LIKE '/SYSV%' OR path = '/dev/zero (deleted)'
                OR (path IS NULL AND perms LIKE '___s') THEN 'shmem'
           WHEN path IS NULL OR path LIKE '[anon%' THEN 'anon'
           ELSE 'file'
       END AS kind,
       (end_addr - start_addr) // 1024 AS size_kb, rss_kb, pss_kb, private_clean_kb + private_dirty_kb AS uss_kb,
       swap_kb, anonymous_kb, vm_flags
FROM mappings
