-- name: shared_groups
-- kind: query
-- description: What a group of processes really costs, from distinct frames: rss_kb (frames the group maps), pss_kb (floored once per group), uss_kb (frames mapped only by the group: freed if it all exited), shared_outside_kb, and the sum of the members' own USS for comparison.
-- params: host: host; snapshot_id: snapshot; by: user|command|cgroup|regex|name; pattern: regex for by=regex (on the command line) or by=name (on the command name), or NULL; pfilter: -P regex or NULL; ufilter: -U regex or NULL
WITH mem AS (SELECT * FROM shared_members($host, $snapshot_id, $by, $pattern, $pfilter, $ufilter)),
-- one row per (group, frame); every figure comes from it (the group's PSS is each frame's share times the
-- group's mappings of it, floored once per group; the members' own USS counts mappings of frames mapped once)
fr AS (
    SELECT mem.grp, p.pfn, count(*) AS maps_in_group, any_value(p.mapcount) AS mapcount, any_value(p.ps) AS ps
    FROM snapshot_pages($host, $snapshot_id) p JOIN mem USING (pid)
    WHERE p.counted
    GROUP BY mem.grp, p.pfn
),
agg AS (
    SELECT grp, count(*) AS frames, count(*) FILTER (WHERE maps_in_group >= mapcount) AS only_frames,
           any_value(ps) AS ps,
           sum(maps_in_group * CASE WHEN mapcount >= 2 THEN (ps << 12) // mapcount ELSE ps << 12 END) AS fp,
           sum(maps_in_group) FILTER (WHERE mapcount <= 1) AS members_private_pages
    FROM fr GROUP BY grp
),
cnt AS (SELECT grp, count(*) AS processes FROM mem GROUP BY grp)
SELECT cnt.grp AS "group", cnt.processes,
       coalesce(agg.frames * agg.ps // 1024, 0) AS rss_kb,
       coalesce(CAST(agg.fp AS BIGINT) >> 22, 0) AS pss_kb,
       coalesce(agg.only_frames * agg.ps // 1024, 0) AS uss_kb,
       coalesce((agg.frames - agg.only_frames) * agg.ps // 1024, 0) AS shared_outside_kb,
       coalesce(coalesce(agg.members_private_pages, 0) * agg.ps // 1024, 0) AS members_uss_kb
FROM cnt LEFT JOIN agg USING (grp)
ORDER BY pss_kb DESC, "group"
