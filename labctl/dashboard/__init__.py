"""The instructor's dashboard: a cohort's progress, live in the browser.

One process keeps one watch per kind (Cohort, Learner, LabSession, GradeAttempt) and a small
picked copy of each object (:mod:`.store`); pages are rendered from that copy (:mod:`.model`,
:mod:`.charts`, templates/) and pushed to viewers as Server-Sent Events (:mod:`.app`). It reads the
cluster only; in-cluster, each viewer is authorised by their Kubernetes token (:mod:`.auth`).
"""
