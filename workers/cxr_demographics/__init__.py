"""Demographic classifiers of chest X-rays (sex, race, age): RoentGen-v2's released QC models."""

FAMILY = "cxr_demographics"
ADAPTER = "workers.cxr_demographics.adapter:DemographicsAdapter"
TINY = "workers.cxr_demographics.tiny:build"
CONTRACT = "workers.cxr_demographics.contract"
