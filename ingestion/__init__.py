"""Candle ingestion, the candle store and the one feature computation.

This package is the data layer every other stage stands on: training and the
service read candles and settings from here and features through Feast.
"""
