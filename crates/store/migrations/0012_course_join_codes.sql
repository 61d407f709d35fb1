-- Enrolment by a join code (issue 17): the course's teacher makes one and gives it to the
-- class; a student who enters it is enrolled. NULL: the course takes no join code. The
-- code is random (about 50 bits) and entering codes is rate limited like logins; it is
-- kept as it is so that the teacher can show it again.
ALTER TABLE courses ADD COLUMN join_code TEXT;
CREATE UNIQUE INDEX courses_join_code ON courses (join_code);
