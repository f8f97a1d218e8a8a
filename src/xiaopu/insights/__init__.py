"""Insights: the dashboards of shopkeepers, suppliers and operators, read from daily rollups."""
