# Stage: report. `snakemake --report results/report.html` (make report) collects every output flagged with
# report(..., caption="../report/<x>.rst", category=...) in the stage rule files into one HTML file;
# this file adds the workflow description shown on its front page.


report: "../report/workflow.rst"
