"""Brand campaigns (超级品牌团): supplier-funded, time-boxed sales with a boost for shops."""
