-- test/upgrade/describe.sql: the livenotify extension of the current database as sorted text,
-- free of OIDs, so that a database upgraded with ALTER EXTENSION ... UPDATE can be compared
-- line by line with a fresh install (test/upgrade/run.sh).  It covers every member object
-- (definition, owner-independent ACL), the config-dump settings, the extension's catalog data
-- and the triggers that register() put on the application's tables.
\pset format unaligned
\pset tuples_only on
\pset pager off
WITH ext AS (
    SELECT oid FROM pg_extension WHERE extname = 'livenotify'
), members AS (
    SELECT d.classid, d.objid, d.objsubid
      FROM pg_depend d, ext
     WHERE d.refclassid = 'pg_extension'::regclass AND d.refobjid = ext.oid AND d.deptype = 'e'
), described AS (
    -- Functions: the whole definition, and who may execute them.
    SELECT 'function ' || p.oid::regprocedure::text || E'\n' ||
           pg_get_functiondef(p.oid) || E'\nacl ' || coalesce(p.proacl::text, 'default') AS line
      FROM members m JOIN pg_proc p ON m.classid = 'pg_proc'::regclass AND p.oid = m.objid
     WHERE p.prokind <> 'a'
    UNION ALL
    -- Tables, views, sequences, indexes: kind, columns, ACL, RLS.
    SELECT 'relation ' || c.oid::regclass::text || ' kind ' || c.relkind::text ||
           ' rls ' || c.relrowsecurity::text || '/' || c.relforcerowsecurity::text ||
           ' acl ' || coalesce(c.relacl::text, 'default') || E'\n' ||
           coalesce((SELECT string_agg(format('  %s %s%s%s', a.attname,
                                              format_type(a.atttypid, a.atttypmod),
                                              CASE WHEN a.attnotnull THEN ' NOT NULL' ELSE '' END,
                                              coalesce(' DEFAULT ' || pg_get_expr(ad.adbin, ad.adrelid), '')),
                                       E'\n' ORDER BY a.attnum)
                       FROM pg_attribute a
                       LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
                      WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped), '') ||
           CASE WHEN c.relkind = 'v' THEN E'\n' || pg_get_viewdef(c.oid) ELSE '' END
      FROM members m JOIN pg_class c ON m.classid = 'pg_class'::regclass AND c.oid = m.objid
    UNION ALL
    -- Constraints, indexes, triggers and policies of the extension's own tables.
    SELECT 'constraint ' || con.conrelid::regclass::text || ' ' || con.conname || ' ' ||
           pg_get_constraintdef(con.oid)
      FROM pg_constraint con JOIN members m
        ON m.classid = 'pg_class'::regclass AND con.conrelid = m.objid
    UNION ALL
    SELECT 'index ' || pg_get_indexdef(i.indexrelid)
      FROM pg_index i JOIN members m ON m.classid = 'pg_class'::regclass AND i.indrelid = m.objid
    UNION ALL
    SELECT 'trigger ' || pg_get_triggerdef(t.oid)
      FROM pg_trigger t JOIN members m ON m.classid = 'pg_class'::regclass AND t.tgrelid = m.objid
     WHERE NOT t.tgisinternal
    UNION ALL
    SELECT 'policy ' || pol.polrelid::regclass::text || ' ' || pol.polname || ' ' ||
           pol.polcmd::text || ' ' || pol.polpermissive::text || ' roles ' || pol.polroles::text ||
           ' using ' || coalesce(pg_get_expr(pol.polqual, pol.polrelid), '-') ||
           ' check ' || coalesce(pg_get_expr(pol.polwithcheck, pol.polrelid), '-')
      FROM pg_policy pol JOIN members m ON m.classid = 'pg_class'::regclass AND pol.polrelid = m.objid
    UNION ALL
    -- Event triggers, types, and any other member by its identity.
    SELECT 'event trigger ' || e.evtname || ' on ' || e.evtevent || ' runs ' ||
           e.evtfoid::regprocedure::text || ' enabled ' || e.evtenabled::text ||
           ' tags ' || coalesce(e.evttags::text, '-')
      FROM members m JOIN pg_event_trigger e
        ON m.classid = 'pg_event_trigger'::regclass AND e.oid = m.objid
    UNION ALL
    SELECT 'member ' || (pg_identify_object(m.classid, m.objid, m.objsubid)).type || ' ' ||
           (pg_identify_object(m.classid, m.objid, m.objsubid)).identity
      FROM members m
    UNION ALL
    -- Tables whose rows pg_dump keeps (pg_extension_config_dump), with their filters.
    SELECT 'config dump ' || cfg.rel::regclass::text || ' where ' || coalesce(cfg.cond, '-')
      FROM pg_extension x, ext,
           unnest(x.extconfig, x.extcondition) AS cfg(rel, cond)
     WHERE x.oid = ext.oid
    UNION ALL
    SELECT 'schema acl ' || n.nspname || ' ' || coalesce(n.nspacl::text, 'default')
      FROM pg_namespace n WHERE n.nspname = 'livenotify'
    UNION ALL
    -- What register() left on the application's tables.
    SELECT 'app trigger ' || pg_get_triggerdef(t.oid)
      FROM pg_trigger t
     WHERE t.tgname LIKE 'livenotify%' AND NOT t.tgisinternal
       AND t.tgrelid NOT IN (SELECT objid FROM members WHERE classid = 'pg_class'::regclass)
)
SELECT line FROM described ORDER BY line;

-- The extension's catalog data, every column of every row.
SELECT 'source_tables ' || row_to_json(s)::text FROM livenotify.source_tables s ORDER BY 1;
SELECT 'rules ' || row_to_json(r)::text FROM livenotify.rules r ORDER BY 1;
SELECT 'sources ' || row_to_json(s)::text FROM livenotify.sources s ORDER BY 1;
