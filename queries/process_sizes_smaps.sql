-- name: process_sizes_smaps
-- kind: view
-- description: Per process and snapshot, set sizes in kB from the kernel's smaps as recorded (what `memsnap sizes` shows): vss, rss, pss, uss, swap, swappss (pss and swappss from smaps_rollup where recorded), maps, with identity (host, boot_id, pid, starttime in clock ticks) and started (the start time as a timestamp), and owner; smaps_rollup figures where only maps was read; NULL for processes recorded in low-impact mode (neither smaps nor smaps_rollup read: see process_impact; `memsnap sizes` computes their figures from pages). Kernel threads excluded.
SELECT p.host, p.snapshot_id, s.capture_start, s.boot_id, p.pid, p.starttime_ticks,
       -- the start as a time: boot time + starttime / clock ticks; where boot_time was not recorded (smemcap
       -- imports), the boot is derived from what was: capture_start - uptime_s
       coalesce(s.boot_time, s.capture_start - to_microseconds(CAST(round(s.uptime_s * 1e6) AS BIGINT)))
           + to_microseconds(CAST(p.starttime_ticks * 1000000 // s.clock_ticks_hz AS BIGINT)) AS started,
       p."user", p.euid AS uid,
       p.comm AS name, p.cmdline AS command, p.cgroup,
       coalesce(m.vss_kb, p.vm_size_kb) AS vss_kb,
       coalesce(m.rss_kb, p.rollup_rss_kb) AS rss_kb,
       -- PSS per process: smaps_rollup where recorded (floored once, exact to the kernel), else the smaps sum
       -- (each mapping floored, as smem; smemcap imports): docs/smem.md, "Per-process figures"
       coalesce(p.rollup_pss_kb, m.pss_kb) AS pss_kb,
       coalesce(m.uss_kb, p.rollup_private_clean_kb + p.rollup_private_dirty_kb) AS uss_kb,
       coalesce(m.swap_kb, p.rollup_swap_kb) AS swap_kb,
       coalesce(p.rollup_swap_pss_kb, m.swap_pss_kb) AS swap_pss_kb,
       p.rollup_pss_anon_kb AS pss_anon_kb, p.rollup_pss_file_kb AS pss_file_kb,
       p.rollup_pss_shmem_kb AS pss_shmem_kb, m.maps
FROM processes p
JOIN snapshots s ON s.host = p.host AND s.snapshot_id = p.snapshot_id
JOIN (
    -- sums of kB columns are HUGEINT in DuckDB (decimal128 in Arrow): plain BIGINT is ample for kB
    SELECT host, snapshot_id, pid, sum(size_kb)::BIGINT AS vss_kb, sum(rss_kb)::BIGINT AS rss_kb,
           sum(pss_kb)::BIGINT AS pss_kb, sum(private_clean_kb + private_dirty_kb)::BIGINT AS uss_kb,
           sum(swap_kb)::BIGINT AS swap_kb, sum(swap_pss_kb)::BIGINT AS swap_pss_kb, count(*) AS maps
    FROM mappings GROUP BY host, snapshot_id, pid
) m ON m.host = p.host AND m.snapshot_id = p.snapshot_id AND m.pid = p.pid
WHERE NOT coalesce(p.kernel_thread, false)
ORDER BY p.host, p.snapshot_id, p.pid
