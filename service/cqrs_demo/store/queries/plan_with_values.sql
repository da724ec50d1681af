-- plan_with_values: this session plans every statement with the values it runs with, never
-- with a generic plan kept from earlier runs (Database's custom_plans: pools whose tables
-- grow from empty under their prepared statements).
SET plan_cache_mode = force_custom_plan
