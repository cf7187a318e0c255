/** Camera ids double as topic segments and metric labels, so they are kept short and plain. */
export const CAMERA_ID = /^[a-z0-9][a-z0-9_-]{0,63}$/;
