-- name: physmem_cgroups
-- kind: query
-- description: Frames charged to each memory cgroup (the physmem source's kpagecgroup) by kind, in kB, beside the cgroup's own figures (memory.current or usage_in_bytes, memory.stat anon and file, hierarchical); memcg_ino 0 is memory charged to no cgroup.
-- params: host: host; snapshot_id: snapshot
WITH s AS (
    SELECT page_size_bytes AS ps FROM snapshots WHERE host = $host AND snapshot_id = $snapshot_id
),
f AS (
    SELECT memcg_ino,
           sum(CASE WHEN class IN ('anon', 'ksm', 'swapcache') THEN frames ELSE 0 END) AS anon,
           sum(CASE WHEN class = 'file_mapped' THEN frames ELSE 0 END) AS file_mapped,
           sum(CASE WHEN class = 'file_unmapped' THEN frames ELSE 0 END) AS file_unmapped,
           sum(CASE WHEN class = 'shmem' THEN frames ELSE 0 END) AS shmem,
           sum(CASE WHEN class = 'shmem' AND mapped THEN frames ELSE 0 END) AS shmem_mapped,
           sum(CASE WHEN class IN ('slab', 'pagetable', 'other_kernel', 'reserved', 'offline') THEN frames ELSE 0 END)
               AS kernel,
           sum(CASE WHEN class IN ('hugetlb', 'zero_page') THEN frames ELSE 0 END) AS other,
           sum(CASE WHEN dirty OR writeback THEN frames ELSE 0 END) AS dirty,
           sum(frames) AS charged
    FROM physmem
    WHERE host = $host AND snapshot_id = $snapshot_id AND memcg_ino IS NOT NULL AND class NOT IN ('free', 'hole')
    GROUP BY memcg_ino
),
c AS (
    SELECT path, ino, version, procs, memory_current_bytes, memory_max_bytes,
           CASE WHEN version = 2 THEN stat['anon'] ELSE stat['total_rss'] END AS stat_anon,
           CASE WHEN version = 2 THEN stat['file'] ELSE stat['total_cache'] END AS stat_file
    FROM cgroups WHERE host = $host AND snapshot_id = $snapshot_id
)
SELECT CASE WHEN c.path IS NOT NULL THEN c.path
            WHEN f.memcg_ino = 0 THEN '(no cgroup)'
            ELSE concat('(inode ', CAST(f.memcg_ino AS VARCHAR), ')') END AS cgroup,
       coalesce(f.memcg_ino, c.ino) AS memcg_ino, c.procs,
       CAST(coalesce(f.anon, 0) * s.ps / 1024 AS BIGINT) AS anon_kb,
       CAST(coalesce(f.file_mapped, 0) * s.ps / 1024 AS BIGINT) AS file_mapped_kb,
       CAST(coalesce(f.file_unmapped, 0) * s.ps / 1024 AS BIGINT) AS file_unmapped_kb,
       CAST(coalesce(f.shmem, 0) * s.ps / 1024 AS BIGINT) AS shmem_kb,
       CAST(coalesce(f.shmem_mapped, 0) * s.ps / 1024 AS BIGINT) AS shmem_mapped_kb,
       CAST(coalesce(f.kernel, 0) * s.ps / 1024 AS BIGINT) AS kernel_kb,
       CAST(coalesce(f.other, 0) * s.ps / 1024 AS BIGINT) AS other_kb,
       CAST(coalesce(f.dirty, 0) * s.ps / 1024 AS BIGINT) AS dirty_kb,
       CAST(coalesce(f.charged, 0) * s.ps / 1024 AS BIGINT) AS charged_kb,
       CAST(c.memory_current_bytes / 1024 AS BIGINT) AS current_kb,
       CAST(c.memory_max_bytes / 1024 AS BIGINT) AS max_kb,
       CAST(c.stat_anon / 1024 AS BIGINT) AS stat_anon_kb,
       CAST(c.stat_file / 1024 AS BIGINT) AS stat_file_kb
FROM f FULL OUTER JOIN c ON c.ino = f.memcg_ino CROSS JOIN s
ORDER BY cgroup
