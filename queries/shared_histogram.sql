-- name: shared_histogram
-- kind: query
-- description: Frames by number of recorded sharers (1, 2, 3-4, 5-8, ...), split into frames shared only among recorded processes and frames also mapped by processes not recorded (kpagecount larger than the mappings seen).
-- params: host: host; snapshot_id: snapshot; pfilter: -P regex or NULL; ufilter: -U regex or NULL
WITH mem AS (SELECT * FROM shared_members($host, $snapshot_id, 'pid', NULL, $pfilter, $ufilter)),
fr AS (
    SELECT p.pfn, count(DISTINCT p.pid) AS sharers, count(*) AS maps_seen, any_value(p.mapcount) AS mapcount,
           any_value(p.ps) AS ps
    FROM snapshot_pages($host, $snapshot_id) p
    WHERE p.counted AND p.pid IN (SELECT pid FROM mem)
    GROUP BY p.pfn
),
b AS (
    SELECT *, CASE WHEN sharers <= 2 THEN sharers ELSE CAST(2 ** ceil(log2(sharers)) AS BIGINT) END AS hi
    FROM fr
)
SELECT CASE WHEN hi <= 2 THEN CAST(hi AS VARCHAR) ELSE CAST(hi // 2 + 1 AS VARCHAR) || '-' || CAST(hi AS VARCHAR) END
           AS sharers,
       count(*) AS frames,
       count(*) * any_value(ps) // 1024 AS kb,
       count(*) FILTER (WHERE maps_seen >= mapcount) * any_value(ps) // 1024 AS recorded_only_kb,
       count(*) FILTER (WHERE maps_seen < mapcount) * any_value(ps) // 1024 AS also_unrecorded_kb
FROM b GROUP BY hi ORDER BY hi
