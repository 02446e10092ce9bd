-- name: physmem_classes
-- kind: query
-- description: The whole machine by frame class (the physmem source): each class's frames and kB, /proc/meminfo's nearest figure beside it; the classes, plus a row for MemTotal less those frames, add up to MemTotal exactly; reserved frames and holes follow, outside MemTotal.
-- params: host: host; snapshot_id: snapshot
WITH s AS (
    SELECT page_size_bytes AS ps FROM snapshots WHERE host = $host AND snapshot_id = $snapshot_id
),
f AS (
    SELECT class, sum(frames) AS frames
    FROM physmem WHERE host = $host AND snapshot_id = $snapshot_id
    GROUP BY class
),
m AS (
    SELECT max(CASE WHEN key = 'MemTotal' THEN value_kb END) AS memtotal,
           max(CASE WHEN key = 'MemFree' THEN value_kb END) AS memfree,
           max(CASE WHEN key = 'AnonPages' THEN value_kb END) AS anonpages,
           max(CASE WHEN key = 'Cached' THEN value_kb END) AS cached,
           max(CASE WHEN key = 'Buffers' THEN value_kb END) AS buffers,
           max(CASE WHEN key = 'Shmem' THEN value_kb END) AS shmem,
           max(CASE WHEN key = 'Mapped' THEN value_kb END) AS mapped,
           max(CASE WHEN key = 'Slab' THEN value_kb END) AS slab,
           max(CASE WHEN key = 'PageTables' THEN value_kb END) AS pagetables,
           max(CASE WHEN key = 'SecPageTables' THEN value_kb END) AS secpagetables,
           max(CASE WHEN key = 'Hugetlb' THEN value_kb END) AS hugetlb,
           max(CASE WHEN key = 'SwapCached' THEN value_kb END) AS swapcached
    FROM meminfo WHERE host = $host AND snapshot_id = $snapshot_id
),
labels AS (
    SELECT * FROM (VALUES
        (1, 'free', 'free (buddy allocator)', 'MemFree'),
        (2, 'anon', 'anonymous (process memory, not in swap cache)', 'AnonPages'),
        (3, 'file_mapped', 'file page cache, mapped', 'Mapped (includes mapped shmem)'),
        (4, 'file_unmapped', 'file page cache, not mapped', 'Cached + Buffers - Shmem - Mapped'),
        (5, 'shmem', 'shmem/tmpfs/memfd/SysV shm', 'Shmem'),
        (6, 'swapcache', 'swap cache', 'SwapCached'),
        (7, 'ksm', 'KSM merged pages', NULL),
        (8, 'zero_page', 'zero page (shared, read-only)', NULL),
        (9, 'hugetlb', 'hugetlb pool (used and free)', 'Hugetlb'),
        (10, 'slab', 'slab (kernel objects)', 'Slab'),
        (11, 'pagetable', 'page tables', 'PageTables + SecPageTables'),
        (12, 'offline', 'offline (balloon, hwpoison)', NULL),
        (13, 'other_kernel', 'other kernel (no user-visible flag: vmalloc, stacks, drivers, per-cpu lists, unmanaged)', NULL)
    ) AS t(ord, class, area, meminfo_key)
),
counted AS (
    SELECT l.ord, l.class, l.area, coalesce(f.frames, 0) AS frames, l.meminfo_key
    FROM labels l LEFT JOIN f ON f.class = l.class
),
rows_in AS (
    SELECT c.ord, c.class, c.area, c.frames, CAST(c.frames * s.ps / 1024 AS BIGINT) AS kb, c.meminfo_key,
           CASE c.class
               WHEN 'free' THEN m.memfree
               WHEN 'anon' THEN m.anonpages
               WHEN 'file_mapped' THEN m.mapped
               WHEN 'file_unmapped' THEN m.cached + m.buffers - m.shmem - m.mapped
               WHEN 'shmem' THEN m.shmem
               WHEN 'swapcache' THEN m.swapcached
               WHEN 'hugetlb' THEN m.hugetlb
               WHEN 'slab' THEN m.slab
               WHEN 'pagetable' THEN m.pagetables + coalesce(m.secpagetables, 0)
           END AS meminfo_kb
    FROM counted c CROSS JOIN s CROSS JOIN m
),
total AS (SELECT sum(frames) AS frames, sum(kb) AS kb FROM rows_in)
SELECT * FROM rows_in
UNION ALL
SELECT 20, 'memtotal_difference',
       'MemTotal less the frames above (negative: frames outside MemTotal, e.g. allocated before the kernel counted it)',
       CAST(m.memtotal * 1024 / s.ps AS BIGINT) - t.frames, m.memtotal - t.kb, NULL, NULL
FROM total t CROSS JOIN s CROSS JOIN m
UNION ALL
SELECT 21, 'total', 'total (MemTotal)', CAST(m.memtotal * 1024 / s.ps AS BIGINT), m.memtotal, 'MemTotal', m.memtotal
FROM s CROSS JOIN m
UNION ALL
SELECT 30 + (CASE l.class WHEN 'reserved' THEN 0 ELSE 1 END), l.class, l.area, coalesce(f.frames, 0),
       CAST(coalesce(f.frames, 0) * s.ps / 1024 AS BIGINT), NULL, NULL
FROM (SELECT * FROM (VALUES
        ('reserved', 'outside MemTotal: reserved (PG_reserved: kernel image, firmware, memmap)'),
        ('hole', 'outside MemTotal: not RAM (no page, or outside /proc/iomem System RAM)')
     ) AS t(class, area)) l
     LEFT JOIN f ON f.class = l.class CROSS JOIN s
ORDER BY 1
