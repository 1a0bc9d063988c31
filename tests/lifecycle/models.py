"""A stage model that exercises every feature kind, window and lapse, with short periods."""

EVERYTHING = """\
name: everything
parameters:
  gap: 10
features:
  big_orders_7d: {kind: count, event: Order Completed, where: "revenue >= 50", window_days: 7}
  pro_events: {kind: exists, where: "properties.plan == 'pro'"}
  spend: {kind: sum, event: Order Completed, field: revenue}
  last_score: {kind: last, event: Survey, field: properties.score}
  email_30d: {kind: count, where: "channel == 'email'", window_days: 30}
  first_order: {kind: first_ts, event: Order Completed}
  days_since_first_order: {kind: days_since, of: first_order}
stages:
  - {name: visitor, initial: true}
  - {name: engaged, rule: "email_30d >= 2 or pro_events"}
  - {name: buyer, rule: "spend > 0"}
  - {name: whale, rule: "big_orders_7d >= 2 or spend >= 200"}
  - {name: fan, rule: "last_score >= 9 and spend > 0"}
  - {name: lost, exit: true, rule: "last_score <= 2"}
lapses:
  - {from: fan, to: buyer, when: "days_since_last_purchase >= gap"}
  - from: buyer
    to: visitor
    when: "days_since_first_order > 40 and days_since_last_purchase >= 30"
"""
