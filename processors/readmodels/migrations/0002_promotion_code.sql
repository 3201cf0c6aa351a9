-- OrderPlaced v2 / PlaceOrder v2 carry a promotion code; the summary shows it.
ALTER TABLE order_summary ADD COLUMN IF NOT EXISTS promotion_code text;
