-- name: frames_without_recorder
-- kind: view
-- description: The frames of each snapshot with mapcount as if the recorder were not running: kpagecount minus the recorder's own references to the frame (recorder_refs, schema 3; stores before it have none and keep kpagecount); `--without-recorder` puts this in place of the frames view, so every page query (sizes --source pages, shared) reads it unchanged. kpagecount is the mapcount column of _raw_frames.
-- docs/design.md, "The observer".  Over _raw_frames (the committed files the analyzer resolved), not over the
-- frames view, which --without-recorder replaces with this one.
SELECT snapshot_id, pfn, mapcount - coalesce(recorder_refs, 0) AS mapcount, flags, memcg_ino, recorder_refs,
       host, "date"
FROM _raw_frames
