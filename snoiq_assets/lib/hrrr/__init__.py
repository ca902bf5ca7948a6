"""HRRR ingestion, Herbie-like and Dagster-free.

inventory  wgrib2 ``.idx`` parsing, message selection and contiguous byte ranges
fetch      ranged GETs from NOAA (or any S3/HTTP source), sources tried in order
grid       GridDefinition from the first GRIB message (any grid ecCodes knows)
decode     framing checks and GRIB -> pyarrow Table, one ecCodes pass per file
synth      GRIB2 files on the real HRRR grid, cloned from the real APCP message
variables  the variable catalogue (idx pattern, GRIB keys, column name, unit)
"""


class HrrrDataError(ValueError):
    """Bad input: names the file, the message number and what was expected."""

    def __init__(self, file: str, problem: str, *, message: int | None = None, expected: str | None = None,
                 found: str | None = None):
        self.file, self.problem, self.message_number = file, problem, message
        self.expected, self.found = expected, found
        parts = [f"{file}"]
        if message is not None:
            parts.append(f"message {message}")
        text = ", ".join(parts) + f": {problem}"
        if expected is not None:
            text += f"; expected {expected}"
        if found is not None:
            text += f", found {found}"
        super().__init__(text)

    def details(self) -> dict:
        return {"file": self.file, "message_number": self.message_number, "problem": self.problem,
                "expected": self.expected, "found": self.found}
