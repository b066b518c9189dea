-- hoop: tell the gateway about every committed DDL, so that it may cache its catalog look-ups
-- (docs/postgres.md, "Catalog cache"). Optional: without it, each masked statement looks the
-- catalog up on its own. Run it once in each database hoop connects to, as a superuser:
--   psql -d DBNAME -v ON_ERROR_STOP=1 -f docs/sql/catalog-notify.sql
-- The gateway checks, on each catalog connection and at least every second, that both triggers
-- are enabled ALWAYS, fire on every command, and run exactly this function (a superuser's, body
-- and search_path as below); anything else and it looks up every statement again.
BEGIN;
CREATE FUNCTION public.hoop_catalog_changed() RETURNS event_trigger
  LANGUAGE plpgsql SET search_path = pg_catalog
  AS $$BEGIN PERFORM pg_catalog.pg_notify('hoop_catalog', ''); END$$;
CREATE EVENT TRIGGER hoop_catalog_ddl ON ddl_command_end EXECUTE FUNCTION public.hoop_catalog_changed();
CREATE EVENT TRIGGER hoop_catalog_drop ON sql_drop EXECUTE FUNCTION public.hoop_catalog_changed();
ALTER EVENT TRIGGER hoop_catalog_ddl ENABLE ALWAYS;
ALTER EVENT TRIGGER hoop_catalog_drop ENABLE ALWAYS;
COMMIT;
