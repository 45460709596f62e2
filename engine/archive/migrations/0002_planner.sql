-- The night planner's memory (engine/planner): each debtor's stage under a strategy, and every
-- move between stages. One row per debtor: ``stage``/``since`` are what the night of
-- ``planned_day`` decided; ``prev_stage``/``prev_since`` what it started from, so planning the
-- same day again starts from the same place (the plan is deterministic).
CREATE TABLE planner_stages (
    strategy     text NOT NULL,
    debtor_id    text NOT NULL,
    stage        text NOT NULL,
    since        date NOT NULL,
    planned_day  date NOT NULL,
    prev_stage   text,
    prev_since   date,
    PRIMARY KEY (strategy, debtor_id)
);

-- Moves between stages, by night (the plan report's "moves", kept).
CREATE TABLE planner_moves (
    strategy     text NOT NULL,
    day          date NOT NULL,
    debtor_id    text NOT NULL,
    from_stage   text,
    to_stage     text NOT NULL,
    reason       text NOT NULL,
    PRIMARY KEY (strategy, day, debtor_id)
);
