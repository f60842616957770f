-- Wake-ups for other brokers: one NOTIFY per statement that leaves jobs ready ("r" and
-- a JSON list of their queues) or finishes jobs ("f" and a JSON list of ids), on the
-- channel "runq.<schema>". A payload that would be long says "*" instead: every queue,
-- or every waiter. PostgreSQL sends notifications at commit and folds repeats.
CREATE FUNCTION runq_notify() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    channel TEXT := 'runq.' || TG_TABLE_SCHEMA;
    payload TEXT;
BEGIN
    SELECT json_agg(DISTINCT queue)::text INTO payload FROM changed WHERE state = 'queued';
    IF payload IS NOT NULL THEN
        PERFORM pg_notify(channel, 'r' || CASE WHEN length(payload) > 7000 THEN '*' ELSE payload END);
    END IF;
    IF TG_OP = 'UPDATE' THEN
        SELECT json_agg(id)::text INTO payload FROM changed
            WHERE state IN ('succeeded', 'failed', 'cancelled');
        IF payload IS NOT NULL THEN
            PERFORM pg_notify(channel, 'f' || CASE WHEN length(payload) > 7000 THEN '*' ELSE payload END);
        END IF;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER jobs_notify_insert AFTER INSERT ON jobs
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION runq_notify();
CREATE TRIGGER jobs_notify_update AFTER UPDATE ON jobs
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION runq_notify();
