-- memsnap SQL cookbook: real questions and the SQL that answers them.
--
-- This file is the source of the "Cookbook" section of docs/sql.md (`python -m analyzer.sqldocs` includes it)
-- and every recipe is run on sample_data/store by tests/test_sql.py, which wants at least one row from each.
--
-- Format: a recipe starts with `-- question: <text>`; the comment lines after it explain the answer;
-- `-- param: NAME=DEFAULT | meaning` declares a parameter the SQL uses as $NAME, with the default the tests use
-- (a JSON list/number/null, or text, exactly as `memsnap sql --param NAME=VALUE` reads it). The SQL follows and
-- ends with `;`. User values only ever reach SQL as bound $parameters.
--
-- "The latest snapshot of each host" is written
--     (host, snapshot_id) IN (SELECT host, max(snapshot_id) FROM snapshots GROUP BY host)
-- because snapshot ids sort by capture time.

-- question: Which cgroups use the most memory (PSS), in the latest snapshot of each host?
-- PSS divides each shared page among the processes mapping it, so the cgroup totals add up to the memory
-- actually used by processes (kernel threads excluded). USS is what the cgroup's processes use alone.
-- param: limit=20 | how many cgroups to show
SELECT host, cgroup, count(*) AS processes, sum(pss_kb) AS pss_kb, sum(uss_kb) AS uss_kb, sum(rss_kb) AS rss_kb,
       sum(swap_kb) AS swap_kb
FROM process_sizes_smaps
WHERE (host, snapshot_id) IN (SELECT host, max(snapshot_id) FROM snapshots GROUP BY host)
GROUP BY host, cgroup
ORDER BY pss_kb DESC
LIMIT $limit;

-- question: Which libraries and files cost the most memory across all processes?
-- PSS by mapping path, summed over every process that maps it (like librank): a library loaded by 100
-- processes shows its real cost once, not 100 times its RSS.
-- param: pattern=\.so(\.|$) | regex on the mapping path (use . for every file)
SELECT host, path, count(DISTINCT pid) AS processes, sum(pss_kb) AS pss_kb, sum(rss_kb) AS rss_kb,
       sum(uss_kb) AS uss_kb, sum(size_kb) AS vss_kb
FROM mapping_kinds
WHERE kind = 'file' AND regexp_matches(path, $pattern)
  AND (host, snapshot_id) IN (SELECT host, max(snapshot_id) FROM snapshots GROUP BY host)
GROUP BY host, path
ORDER BY pss_kb DESC, path
LIMIT 25;

-- question: Which physical pages are shared by exactly these processes, and what kind are they?
-- frame_sharers has one row per distinct frame with the sorted list of recorded pids mapping it. The two
-- list_has_all tests ask for exactly this set of sharers (use only the first for "at least these"). Needs a
-- snapshot recorded as root (PFNs).
-- param: pids=[19036, 19037, 19038, 19039] | the pids (a JSON list); here the parent and the three workers of sample_data
SELECT fs.host, fs.snapshot_id, fs.kind, count(*) AS frames, count(*) * any_value(s.page_size_bytes) // 1024 AS kb,
       max(fs.mapcount) AS max_mapcount
FROM frame_sharers fs JOIN snapshots s USING (host, snapshot_id)
WHERE list_has_all(fs.pids, $pids) AND list_has_all($pids, fs.pids)
GROUP BY fs.host, fs.snapshot_id, fs.kind
ORDER BY fs.host, fs.snapshot_id, kb DESC;

-- question: Whose heap grew the most between two snapshots?
-- [heap] mappings (mapping_kinds.kind = 'heap') of the same process (pid and start time) in both snapshots.
-- Without parameters: the first and the last snapshot of each host.
-- param: from_id=null | earlier snapshot id, or null for the first snapshot of the host
-- param: to_id=null | later snapshot id, or null for the last snapshot of the host
WITH ends AS (
    SELECT host, coalesce($from_id, min(snapshot_id)) AS from_id, coalesce($to_id, max(snapshot_id)) AS to_id
    FROM snapshots GROUP BY host
),
heap AS (
    SELECT h.host, h.snapshot_id, h.pid, p.starttime_ticks, p.comm, sum(h.size_kb) AS heap_kb,
           sum(h.rss_kb) AS heap_rss_kb
    FROM mapping_kinds h
    JOIN processes p ON p.host = h.host AND p.snapshot_id = h.snapshot_id AND p.pid = h.pid
    WHERE h.kind = 'heap'
    GROUP BY ALL
)
SELECT a.host, a.pid, a.comm, a.heap_kb AS heap_kb_before, b.heap_kb AS heap_kb_after,
       b.heap_kb - a.heap_kb AS heap_growth_kb, b.heap_rss_kb - a.heap_rss_kb AS heap_rss_growth_kb
FROM ends
JOIN heap a ON a.host = ends.host AND a.snapshot_id = ends.from_id
JOIN heap b ON b.host = ends.host AND b.snapshot_id = ends.to_id AND b.pid = a.pid
               AND b.starttime_ticks = a.starttime_ticks
ORDER BY heap_rss_growth_kb DESC, heap_growth_kb DESC, a.pid;

-- question: Which processes have the most memory in swap?
-- swap_kb counts the process's swapped-out pages; swap_pss_kb shares each swap entry among the processes that
-- reference it (SwapPss), so it adds up across processes.
-- param: limit=20 | how many processes to show
SELECT host, snapshot_id, pid, "user", name, swap_kb, swap_pss_kb, rss_kb, pss_kb
FROM process_sizes_smaps
WHERE (host, snapshot_id) IN (SELECT host, max(snapshot_id) FROM snapshots GROUP BY host)
ORDER BY swap_kb DESC, swap_pss_kb DESC, pss_kb DESC
LIMIT $limit;

-- question: How much of each process is anonymous, file-backed and shmem memory?
-- PSS split from smaps_rollup (Pss_Anon, Pss_File, Pss_Shmem) next to the RSS split from /proc/<pid>/status
-- (RssAnon, RssFile, RssShmem).
SELECT host, snapshot_id, pid, comm, rollup_pss_kb AS pss_kb,
       rollup_pss_anon_kb AS pss_anon_kb, rollup_pss_file_kb AS pss_file_kb, rollup_pss_shmem_kb AS pss_shmem_kb,
       rss_anon_kb, rss_file_kb, rss_shmem_kb
FROM processes
WHERE status IN ('ok', 'partial') AND NOT coalesce(kernel_thread, false)
  AND (host, snapshot_id) IN (SELECT host, max(snapshot_id) FROM snapshots GROUP BY host)
ORDER BY pss_kb DESC;

-- question: Which processes map the zero page, and how much?
-- Reads of never-written anonymous memory map the shared zero page (kpageflags bit 24). smaps does not count
-- it in Rss; this shows the virtual memory that is backed by it. Needs PFNs.
SELECT p.host, p.snapshot_id, p.pid, count(*) AS zero_pages, count(*) * any_value(s.page_size_bytes) // 1024 AS zero_kb
FROM pages_decoded p
JOIN frames f ON f.host = p.host AND f.snapshot_id = p.snapshot_id AND f.pfn = p.pfn
JOIN snapshots s ON s.host = p.host AND s.snapshot_id = p.snapshot_id
WHERE p.present AND ((f.flags >> 24) & 1) = 1
GROUP BY p.host, p.snapshot_id, p.pid
ORDER BY zero_kb DESC, p.host, p.snapshot_id, p.pid;

-- question: How much transparent huge page (THP) memory does each process use?
-- From smaps: AnonHugePages, ShmemPmdMapped and FilePmdMapped summed over the mappings, with the number of
-- mappings the kernel considers THP-eligible.
SELECT m.host, m.snapshot_id, m.pid, any_value(p.comm) AS comm,
       sum(m.anon_huge_pages_kb) AS anon_thp_kb, sum(m.shmem_pmd_mapped_kb) AS shmem_thp_kb,
       sum(m.file_pmd_mapped_kb) AS file_thp_kb, sum(m.rss_kb) AS rss_kb,
       count(*) FILTER (WHERE m.thp_eligible = 1) AS thp_eligible_mappings
FROM mappings m
JOIN processes p ON p.host = m.host AND p.snapshot_id = m.snapshot_id AND p.pid = m.pid
GROUP BY m.host, m.snapshot_id, m.pid
HAVING sum(m.anon_huge_pages_kb) + sum(m.shmem_pmd_mapped_kb) + sum(m.file_pmd_mapped_kb) > 0
ORDER BY anon_thp_kb + shmem_thp_kb + file_thp_kb DESC, m.host, m.snapshot_id, m.pid;

-- question: How much memory do the recorded processes share with processes that were not recorded?
-- kpagecount (frames.mapcount) counts every mapping in the system; frame_sharers.mappings_seen counts those of
-- the recorded processes. When mapcount is larger, someone else (or the recorder itself, see
-- snapshots.recorder_pid) maps the frame too, and PSS figures of recorded processes are lower than the
-- memory they would use alone.
SELECT fs.host, fs.snapshot_id, fs.kind, count(*) AS frames,
       count(*) * any_value(s.page_size_bytes) // 1024 AS kb,
       sum(fs.mapcount - fs.mappings_seen) AS unrecorded_mappings
FROM frame_sharers fs JOIN snapshots s USING (host, snapshot_id)
WHERE fs.mapcount > fs.mappings_seen
GROUP BY fs.host, fs.snapshot_id, fs.kind
ORDER BY fs.host, fs.snapshot_id, kb DESC;

-- question: What are the largest memfd, /dev/shm, SysV and shared anonymous mappings?
-- mapping_kinds.kind = 'shmem': memory that lives in tmpfs and is not freed when one process unmaps it.
-- param: limit=20 | how many mappings to show
SELECT k.host, k.snapshot_id, k.pid, p.comm, coalesce(k.path, '<shared anonymous>') AS path, k.perms,
       k.size_kb, k.rss_kb, k.pss_kb, k.swap_kb
FROM mapping_kinds k
JOIN processes p ON p.host = k.host AND p.snapshot_id = k.snapshot_id AND p.pid = k.pid
WHERE k.kind = 'shmem'
  AND (k.host, k.snapshot_id) IN (SELECT host, max(snapshot_id) FROM snapshots GROUP BY host)
ORDER BY k.rss_kb DESC, k.size_kb DESC, k.pid, k.idx
LIMIT $limit;

-- question: How much memory does each user use?
-- The smem -u view: totals per effective user in the latest snapshot of each host.
SELECT host, "user", count(*) AS processes, sum(pss_kb) AS pss_kb, sum(uss_kb) AS uss_kb, sum(rss_kb) AS rss_kb,
       sum(swap_kb) AS swap_kb, sum(vss_kb) AS vss_kb
FROM process_sizes_smaps
WHERE (host, snapshot_id) IN (SELECT host, max(snapshot_id) FROM snapshots GROUP BY host)
GROUP BY host, "user"
ORDER BY pss_kb DESC;

-- question: What did each snapshot cost to capture, and which processes were the slowest to read?
-- processes.capture_ms is the wall time spent on one process (reading smaps blocks its mmap/munmap meanwhile);
-- compare it with the number of mappings and pages read.
-- param: min_ms=0 | only processes that took at least this many milliseconds
SELECT p.host, p.snapshot_id, p.pid, p.comm, round(p.capture_ms, 2) AS capture_ms, p.mappings, p.pages, p.sources,
       p.status, round(sl.capture_s, 3) AS snapshot_capture_s
FROM processes p JOIN snapshot_list sl ON sl.host = p.host AND sl.snapshot_id = p.snapshot_id
WHERE p.capture_ms >= $min_ms
ORDER BY p.capture_ms DESC;

-- question: How did system memory (meminfo) change from snapshot to snapshot?
-- /proc/meminfo keys side by side, one row per snapshot, in capture order.
SELECT s.host, s.snapshot_id, s.capture_start,
       max(m.value_kb) FILTER (WHERE m.key = 'MemTotal') AS mem_total_kb,
       max(m.value_kb) FILTER (WHERE m.key = 'MemAvailable') AS mem_available_kb,
       max(m.value_kb) FILTER (WHERE m.key = 'AnonPages') AS anon_pages_kb,
       max(m.value_kb) FILTER (WHERE m.key = 'Cached') AS cached_kb,
       max(m.value_kb) FILTER (WHERE m.key = 'Shmem') AS shmem_kb,
       max(m.value_kb) FILTER (WHERE m.key = 'AnonHugePages') AS anon_huge_pages_kb,
       max(m.value_kb) FILTER (WHERE m.key = 'SwapTotal') - max(m.value_kb) FILTER (WHERE m.key = 'SwapFree')
           AS swap_used_kb
FROM snapshots s JOIN meminfo m ON m.host = s.host AND m.snapshot_id = s.snapshot_id
GROUP BY s.host, s.snapshot_id, s.capture_start
ORDER BY s.capture_start, s.host;

-- question: Which processes would free the most memory if they exited?
-- USS (pages mapped only by the process) is what its exit returns to the system; PSS is its fair share.
-- param: pattern=. | regex on the command line
SELECT host, pid, "user", name, uss_kb, pss_kb, rss_kb, command
FROM process_sizes_smaps
WHERE regexp_matches(coalesce(command, name, ''), $pattern)
  AND (host, snapshot_id) IN (SELECT host, max(snapshot_id) FROM snapshots GROUP BY host)
ORDER BY uss_kb DESC, pid;
