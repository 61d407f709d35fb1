-- Images shared with a course: its teacher and members may use them (as with images
-- shared with everyone, the owner's label on the image decides whose it is).
CREATE TABLE image_courses (
    reference TEXT NOT NULL,
    owner TEXT NOT NULL,
    course TEXT NOT NULL REFERENCES courses(id) ON DELETE CASCADE,
    PRIMARY KEY (reference, course)
);
CREATE INDEX image_courses_course ON image_courses (course);
