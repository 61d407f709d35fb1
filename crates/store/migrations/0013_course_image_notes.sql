-- A course's own name and note for an image shared with it ("use this for exercise 3"),
-- set by the course's teacher; NULL: none. They go with the share.
ALTER TABLE image_courses ADD COLUMN title TEXT;
ALTER TABLE image_courses ADD COLUMN note TEXT;
