-- Everything the tenancy extension consists of, as sorted text: one line per
-- object and property.  The upgrade test prints it for a database upgraded
-- with ALTER EXTENSION UPDATE and for a fresh CREATE EXTENSION, and the two
-- must be identical: the upgrade script is hand-written, the install script
-- is generated from the code, and this is what keeps them in step.
-- Only catalog facts that a user can observe are listed; OIDs never are.
\pset format unaligned
\pset tuples_only on
WITH ext AS (SELECT oid FROM pg_extension WHERE extname = 'tenancy'),
members AS (
  SELECT d.classid, d.objid FROM pg_depend d, ext
   WHERE d.refclassid = 'pg_extension'::regclass AND d.refobjid = ext.oid AND d.deptype = 'e'
),
acl(obj, acl) AS ( -- privileges as sorted grantee=privilege lines, independent of the order of GRANTs
  SELECT p.oid::regprocedure::text,
         (SELECT string_agg(format('%s:%s', a.grantee::regrole, a.privilege_type), ',' ORDER BY 1)
            FROM aclexplode(p.proacl) a)
    FROM pg_proc p JOIN members m ON m.classid = 'pg_proc'::regclass AND m.objid = p.oid
  UNION ALL
  SELECT c.oid::regclass::text,
         (SELECT string_agg(format('%s:%s', a.grantee::regrole, a.privilege_type), ',' ORDER BY 1)
            FROM aclexplode(c.relacl) a)
    FROM pg_class c JOIN members m ON m.classid = 'pg_class'::regclass AND m.objid = c.oid
),
lines(line) AS (
  -- every member object
  SELECT 'member ' || pg_describe_object(classid, objid, 0) FROM members
  UNION ALL
  -- functions and procedures: full definition (body, volatility, security, SET search_path)
  SELECT 'function ' || p.oid::regprocedure || E'\n' || pg_get_functiondef(p.oid)
    FROM pg_proc p JOIN members m ON m.classid = 'pg_proc'::regclass AND m.objid = p.oid
  UNION ALL
  SELECT 'acl ' || obj || ' ' || coalesce(acl, '(default)') FROM acl
  UNION ALL
  -- enum labels in order
  SELECT format('enum %s %s', t.oid::regtype,
                (SELECT string_agg(enumlabel, ',' ORDER BY enumsortorder) FROM pg_enum WHERE enumtypid = t.oid))
    FROM pg_type t JOIN members m ON m.classid = 'pg_type'::regclass AND m.objid = t.oid
   WHERE t.typtype = 'e'
  UNION ALL
  -- table and view columns, with type, nullability and default
  SELECT format('column %s.%s %s%s%s', c.oid::regclass, a.attname, format_type(a.atttypid, a.atttypmod),
                CASE WHEN a.attnotnull THEN ' not null' ELSE '' END,
                coalesce(' default ' || pg_get_expr(ad.adbin, ad.adrelid), '')
                  || CASE a.attidentity WHEN 'a' THEN ' identity always' WHEN 'd' THEN ' identity by default' ELSE '' END)
    FROM pg_class c JOIN members m ON m.classid = 'pg_class'::regclass AND m.objid = c.oid
    JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
    LEFT JOIN pg_attrdef ad ON ad.adrelid = c.oid AND ad.adnum = a.attnum
  UNION ALL
  -- column order matters to SELECT * and COPY: a dropped-and-re-added column moves to the end
  SELECT format('columns %s %s', c.oid::regclass,
                (SELECT string_agg(attname, ',' ORDER BY attnum) FROM pg_attribute
                  WHERE attrelid = c.oid AND attnum > 0 AND NOT attisdropped))
    FROM pg_class c JOIN members m ON m.classid = 'pg_class'::regclass AND m.objid = c.oid
   WHERE c.relkind IN ('r', 'v')
  UNION ALL
  SELECT format('constraint %s %s %s', con.conrelid::regclass, con.conname, pg_get_constraintdef(con.oid))
    FROM pg_constraint con JOIN members m ON m.classid = 'pg_class'::regclass AND m.objid = con.conrelid
  UNION ALL
  SELECT 'index ' || pg_get_indexdef(i.indexrelid)
    FROM pg_index i JOIN members m ON m.classid = 'pg_class'::regclass AND m.objid = i.indrelid
  UNION ALL
  SELECT 'trigger ' || pg_get_triggerdef(t.oid)
    FROM pg_trigger t JOIN members m ON m.classid = 'pg_class'::regclass AND m.objid = t.tgrelid
   WHERE NOT t.tgisinternal -- foreign-key triggers are covered by their constraints
  UNION ALL
  SELECT format('view %s %s', c.oid::regclass, pg_get_viewdef(c.oid))
    FROM pg_class c JOIN members m ON m.classid = 'pg_class'::regclass AND m.objid = c.oid
   WHERE c.relkind = 'v'
  UNION ALL
  SELECT format('relation %s kind=%s rls=%s force=%s options=%s', c.oid::regclass, c.relkind,
                c.relrowsecurity, c.relforcerowsecurity, c.reloptions)
    FROM pg_class c JOIN members m ON m.classid = 'pg_class'::regclass AND m.objid = c.oid
  UNION ALL
  -- tables whose rows pg_dump keeps (pg_extension_config_dump)
  SELECT 'config_dump ' || cfg::regclass || ' ' || coalesce(cond, '')
    FROM pg_extension e, unnest(e.extconfig, e.extcondition) AS u(cfg, cond)
   WHERE e.extname = 'tenancy'
  UNION ALL
  -- initial privileges: what pg_dump compares the members' privileges with
  SELECT format('init_privs %s %s', pg_describe_object(p.classoid, p.objoid, p.objsubid), p.initprivs)
    FROM pg_init_privs p JOIN members m ON m.classid = p.classoid AND m.objid = p.objoid
  UNION ALL
  SELECT format('event_trigger %s on %s runs %s enabled=%s tags=%s', t.evtname, t.evtevent, t.evtfoid::regproc,
                t.evtenabled, t.evttags)
    FROM pg_event_trigger t JOIN members m ON m.classid = 'pg_event_trigger'::regclass AND m.objid = t.oid
  UNION ALL
  SELECT format('extension schema=%s relocatable=%s', extnamespace::regnamespace, extrelocatable)
    FROM pg_extension WHERE extname = 'tenancy'
)
SELECT line FROM lines ORDER BY line;
