-- name: page_pairs
-- kind: query
-- description: diff --source pages in one pass over both snapshots' pages: each snapshot's present pages counted per (pid, mapping, kind of frame) with their PSS share (the rows of page_mapping_facts' `k`, host and snapshot_id set), and per process present in both with the same identity its page transitions in kB (rows with host NULL; the rules of page_transitions).
-- params: from_host: host of the earlier snapshot; from_id: earlier snapshot id; to_host: host of the later snapshot; to_id: later snapshot id; parts: number of process partitions to split the work into (each part is one run of the query, with a fraction of the memory), or NULL for 1; part: number of the partition this run computes, 0 to parts-1, or NULL for 0
-- Why (issue 15): `diff --source pages` needs both snapshots' sizes and the transitions between them.  Apart,
-- each snapshot's pages are joined to its frames twice (once for page_mapping_facts, once for the pairing of
-- page_transitions); here once, and the per-mapping counts come from the pairs (analyzer/diff.py `_pairs`, and
-- sizes.page_facts_table with `kinds`).  At 5.2M pages, in process: 6.6-7.0 CPU s, against 6.3-6.7 for
-- page_transitions alone and 5.7-6.6 more for page_mapping_facts of both snapshots.  The frame kinds (cls) and
-- shares are page_mapping_facts' (`f`), the transitions page_transitions' rules; the pages are grouped by
-- (pid, mapping and kind before, after, transition), a few keys and three sums per row.
WITH
pb AS (SELECT pid, starttime_ticks FROM processes WHERE host = $from_host AND snapshot_id = $from_id),
pa AS (SELECT pid, starttime_ticks FROM processes WHERE host = $to_host AND snapshot_id = $to_id),
same AS (SELECT pid FROM pb JOIN pa USING (pid, starttime_ticks)),
psb AS (SELECT page_size_bytes::UBIGINT AS ps FROM snapshots WHERE host = $from_host AND snapshot_id = $from_id),
psa AS (SELECT page_size_bytes::UBIGINT AS ps FROM snapshots WHERE host = $to_host AND snapshot_id = $to_id),
-- per frame: its kind as page_mapping_facts' cls bits, its PSS share (fixed point), its mapcount
fb AS (
    SELECT f.pfn, f.mapcount,
           CASE WHEN (f.flags IS NULL OR ((f.flags >> 24) & 1) = 0) AND (f.flags IS NULL OR ((f.flags >> 17) & 1) = 0)
                THEN 1 ELSE 0 END
           + CASE WHEN coalesce(f.mapcount, 0) <= 1 THEN 2 ELSE 0 END
           + CASE WHEN ((f.flags >> 12) & 1) = 1 THEN 4 ELSE 0 END
           + CASE WHEN ((f.flags >> 12) & 1) = 0 AND ((f.flags >> 14) & 1) = 1 THEN 8 ELSE 0 END
           + CASE WHEN ((f.flags >> 17) & 1) = 1 THEN 16 ELSE 0 END
           + CASE WHEN ((f.flags >> 22) & 1) = 1 THEN 32 ELSE 0 END
           + CASE WHEN f.mapcount IS NULL THEN 64 ELSE 0 END AS cls,
           CASE WHEN f.mapcount >= 2 THEN ((SELECT ps FROM psb) << 12) // f.mapcount
                ELSE (SELECT ps FROM psb) << 12 END AS pss_fp
    FROM frames f WHERE host = $from_host AND snapshot_id = $from_id
),
fa AS (
    SELECT f.pfn, f.mapcount,
           CASE WHEN (f.flags IS NULL OR ((f.flags >> 24) & 1) = 0) AND (f.flags IS NULL OR ((f.flags >> 17) & 1) = 0)
                THEN 1 ELSE 0 END
           + CASE WHEN coalesce(f.mapcount, 0) <= 1 THEN 2 ELSE 0 END
           + CASE WHEN ((f.flags >> 12) & 1) = 1 THEN 4 ELSE 0 END
           + CASE WHEN ((f.flags >> 12) & 1) = 0 AND ((f.flags >> 14) & 1) = 1 THEN 8 ELSE 0 END
           + CASE WHEN ((f.flags >> 17) & 1) = 1 THEN 16 ELSE 0 END
           + CASE WHEN ((f.flags >> 22) & 1) = 1 THEN 32 ELSE 0 END
           + CASE WHEN f.mapcount IS NULL THEN 64 ELSE 0 END AS cls,
           CASE WHEN f.mapcount >= 2 THEN ((SELECT ps FROM psa) << 12) // f.mapcount
                ELSE (SELECT ps FROM psa) << 12 END AS pss_fp
    FROM frames f WHERE host = $to_host AND snapshot_id = $to_id
),
-- each snapshot's pages with their frames (present pages only), split into process parts as page_transitions;
-- k: the page's (mapping, kind of frame) as one number, idx * 128 + cls (NULL unless present with a mapping);
-- a page without a frames row is of kind 67 (page_mapping_facts' rule), its share a whole page (below)
b AS (
    SELECT p.pid, p.vpn, p.entry, f.mapcount, f.pss_fp,
           CASE WHEN ((p.entry >> 63) & 1) = 1 THEN p.map_idx::BIGINT * 128 + coalesce(f.cls, 67) END AS k
    FROM (SELECT pid, vpn, entry, map_idx FROM pages WHERE host = $from_host AND snapshot_id = $from_id) p
    LEFT JOIN fb f ON ((p.entry >> 63) & 1) = 1 AND f.pfn = p.entry & 36028797018963967
    WHERE coalesce($parts, 1) = 1 OR hash(p.pid) % $parts::UBIGINT = $part::UBIGINT
),
a AS (
    SELECT p.pid, p.vpn, p.entry, f.mapcount, f.pss_fp,
           CASE WHEN ((p.entry >> 63) & 1) = 1 THEN p.map_idx::BIGINT * 128 + coalesce(f.cls, 67) END AS k
    FROM (SELECT pid, vpn, entry, map_idx FROM pages WHERE host = $to_host AND snapshot_id = $to_id) p
    LEFT JOIN fa f ON ((p.entry >> 63) & 1) = 1 AND f.pfn = p.entry & 36028797018963967
    WHERE coalesce($parts, 1) = 1 OR hash(p.pid) % $parts::UBIGINT = $part::UBIGINT
),
-- the pairs by (pid, vpn), each with its transition t, the rules of page_transitions, which exclude each other
-- (a pagemap entry is present, bit 63, or swapped, bit 62, never both): 1 became private, 2 became shared,
-- 3 new, 4 gone, 5 swapped out, 6 swapped in, 0 none
j AS (
    SELECT coalesce(a.pid, b.pid) AS pid, b.k AS bk, a.k AS ak, b.pss_fp AS bpss, a.pss_fp AS apss,
           CASE WHEN b.entry IS NULL THEN 3
                WHEN a.entry IS NULL THEN 4
                WHEN ((b.entry >> 63) & 1) = 1 AND ((a.entry >> 63) & 1) = 1 THEN
                    CASE WHEN (b.entry & 36028797018963967) <> (a.entry & 36028797018963967) AND b.mapcount > 1
                              AND a.mapcount <= 1 THEN 1
                         WHEN b.mapcount <= 1 AND a.mapcount > 1 THEN 2 ELSE 0 END
                WHEN ((b.entry >> 63) & 1) = 1 AND ((a.entry >> 62) & 1) = 1 THEN 5
                WHEN ((b.entry >> 62) & 1) = 1 AND ((a.entry >> 63) & 1) = 1 THEN 6
                ELSE 0 END AS t
    FROM b FULL JOIN a ON a.pid = b.pid AND a.vpn = b.vpn
),
-- per pid, (mapping, kind) before and after, and transition: the pages and each side's PSS (frames' shares;
-- a page without mapcount adds a whole page, counted in below)
g AS (
    SELECT pid, bk, ak, t, count(*) AS n, sum(bpss) AS bpss, sum(apss) AS apss
    FROM j
    GROUP BY pid, bk, ak, t
)
SELECT $from_host AS host, $from_id AS snapshot_id, pid, (bk // 128)::INTEGER AS idx, (bk % 128)::INTEGER AS cls,
       sum(n)::BIGINT AS pages,
       CASE WHEN bk % 128 >= 64 THEN sum(n) * ((SELECT ps FROM psb) << 12) ELSE sum(bpss) END::BIGINT AS pss_fp,
       NULL::BIGINT AS became_private_kb, NULL::BIGINT AS became_shared_kb, NULL::BIGINT AS new_pages_kb,
       NULL::BIGINT AS gone_pages_kb, NULL::BIGINT AS swapped_out_kb, NULL::BIGINT AS swapped_in_kb
FROM g WHERE bk IS NOT NULL GROUP BY pid, bk
UNION ALL
SELECT $to_host, $to_id, pid, (ak // 128)::INTEGER, (ak % 128)::INTEGER, sum(n)::BIGINT,
       CASE WHEN ak % 128 >= 64 THEN sum(n) * ((SELECT ps FROM psa) << 12) ELSE sum(apss) END::BIGINT,
       NULL, NULL, NULL, NULL, NULL, NULL
FROM g WHERE ak IS NOT NULL GROUP BY pid, ak
UNION ALL
SELECT NULL, NULL, pid, NULL, NULL, NULL, NULL,
       (sum(CASE WHEN t = 1 THEN n ELSE 0 END) * (SELECT ps FROM psa) // 1024)::BIGINT,
       (sum(CASE WHEN t = 2 THEN n ELSE 0 END) * (SELECT ps FROM psa) // 1024)::BIGINT,
       (sum(CASE WHEN t = 3 THEN n ELSE 0 END) * (SELECT ps FROM psa) // 1024)::BIGINT,
       (sum(CASE WHEN t = 4 THEN n ELSE 0 END) * (SELECT ps FROM psa) // 1024)::BIGINT,
       (sum(CASE WHEN t = 5 THEN n ELSE 0 END) * (SELECT ps FROM psa) // 1024)::BIGINT,
       (sum(CASE WHEN t = 6 THEN n ELSE 0 END) * (SELECT ps FROM psa) // 1024)::BIGINT
FROM g WHERE pid IN (SELECT pid FROM same) GROUP BY pid
