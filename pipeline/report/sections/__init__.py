"""The sections of the report page, one module each: row flow, samples and augmentation, teacher,
cache, student; each turns the collected ``ReportData`` into the HTML of its section."""
