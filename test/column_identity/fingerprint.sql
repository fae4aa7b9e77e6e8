-- Every object of the extension and what defines it (functions, columns, views, triggers,
-- event triggers, grants), one line each: equal output means the same extension.
SELECT pg_describe_object(d.classid, d.objid, 0) || ' | ' || coalesce(
         CASE d.classid
           WHEN 'pg_proc'::regclass THEN
             (SELECT pg_get_functiondef(p.oid) || ' acl=' || coalesce(p.proacl::text, '')
                FROM pg_proc p WHERE p.oid = d.objid AND p.prokind <> 'a')
           WHEN 'pg_class'::regclass THEN
             (SELECT c.relkind::text || ' acl=' || coalesce(c.relacl::text, '') || ' ' ||
                     coalesce(pg_get_viewdef(c.oid), '') ||
                     (SELECT string_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
                                        || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END,
                                        ', ' ORDER BY a.attnum)
                        FROM pg_attribute a
                       WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped) ||
                     coalesce((SELECT string_agg(pg_get_triggerdef(t.oid), '; ' ORDER BY t.tgname)
                                 FROM pg_trigger t WHERE t.tgrelid = c.oid AND NOT t.tgisinternal), '') ||
                     coalesce((SELECT string_agg(pg_get_constraintdef(k.oid), '; ' ORDER BY k.conname)
                                 FROM pg_constraint k WHERE k.conrelid = c.oid), '')
                FROM pg_class c WHERE c.oid = d.objid)
           WHEN 'pg_event_trigger'::regclass THEN
             (SELECT e.evtevent::text || ' ' || e.evtfoid::regproc || ' ' || coalesce(e.evttags::text, '')
                FROM pg_event_trigger e WHERE e.oid = d.objid)
         END, '')
  FROM pg_depend d
 WHERE d.refclassid = 'pg_extension'::regclass
   AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'livenotify')
   AND d.deptype = 'e'
 ORDER BY 1;
