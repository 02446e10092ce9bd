-- name: snapshot_list
-- kind: view
-- description: Committed snapshots with what they hold: host, capture time, process counts, pages, frames and bytes on disk.
SELECT snapshot_id, host, capture_start, capture_end,
       date_diff('millisecond', capture_start, capture_end) / 1000.0 AS capture_s,
       kernel_release, boot_id, sources, pfn_available,
       processes_seen, processes_recorded, processes_partial, processes_vanished, processes_denied,
       processes_zombie, kernel_threads, pages_rows AS pages, frames_rows AS frames, bytes_written AS bytes
FROM snapshots
ORDER BY capture_start, snapshot_id
